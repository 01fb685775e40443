# Out-of-range and inconsistent options: exit code != 0, a message naming the option, no crash
# (the loop is tests/reliability/bad_options.cmake, which the other examples use too).
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
  "--temperature,0|--temperature"
  "--data,/nonexistent/file.txt|--data"
  "--threads,0|--threads")
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
