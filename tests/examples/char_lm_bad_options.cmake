# Out-of-range and inconsistent options: exit code != 0, a message naming the option, no crash
# (the loop is tests/reliability/bad_options.cmake, which the other examples use too). Numbers
# are parsed whole and checked: a seed or count never wraps (-1), clamps (2^64) or rounds (2.5),
# and NaN is in no range.
set(char_lm_cases
  "--cell,lstmx|--cell"
  "--hidden,0|--hidden"
  "--lr,-1|--lr"
  "--seq-len,1|--seq-len"
  "--k1,100,--seq-len,10|--k1"
  "--k1,5,--k2,3|--k2"
  "--k2,5|--k2"
  "--tau,2,--k1,3|--tau"
  "--clip,-1|--clip"
  "--dropout,0.99|--dropout: must be in"
  "--lr-schedule,linear|--lr-schedule"
  "--temperature,0|--temperature"
  "--data,/nonexistent/file.txt|--data"
  "--threads,0|--threads"
  "--seed,-1|--seed: must be a whole number in \\[0, 18446744073709551615\\], got '-1'"
  "--seed,18446744073709551616|--seed: must be a whole number.*got '18446744073709551616'"
  "--seed,99999999999999999999999|--seed: must be a whole number"
  "--seed,1.5|--seed: must be a whole number"
  "--seed,|--seed"
  "--steps,4294967297|--steps: must be a whole number in \\[0, 10000000\\], got '4294967297'"
  "--steps,-1|--steps: must be a whole number"
  "--steps,2.5|--steps: must be a whole number"
  "--hidden,12x|--hidden: must be a whole number"
  "--batch,18446744073709551617|--batch: must be a whole number"
  "--eval-every,0x10|--eval-every: must be a whole number"
  "--clip,nan|--clip: must be in \\[0, 1000000\\], got 'nan'"
  "--clip,1e400|--clip: must be in"
  "--lr,nan|--lr: must be > 0"
  "--temperature,inf|--temperature: must be > 0")
set(EXE ${CHAR_LM})
set(NAME char_lm)
include(${CMAKE_CURRENT_LIST_DIR}/../reliability/bad_options.cmake)
# --help explains every option and exits 0.
execute_process(COMMAND ${CHAR_LM} --help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "char_lm --help exited with ${rc}")
endif()
foreach(opt --cell --layers --hidden --seq-len --k1 --k2 --tau --clip --lr --steps --seed --data --resume --save
    --sample --threads --batch --eval-every --out --log-file)
  if(NOT out MATCHES "${opt}")
    message(FATAL_ERROR "char_lm --help does not mention ${opt}")
  endif()
endforeach()
