# Resume test: the loss log of 8 steps in one run equals 4 steps + --resume for steps 5..8,
# for each truncation mode (chunked, overlapping, per-output window), and with dropout masks
# on the whole-chunk and per-step paths (the masks are functions of the step). Losses are printed with
# 9 significant digits, so equal text means the float32 trajectories agree bit for bit or nearly.
include(${CMAKE_CURRENT_LIST_DIR}/char_lm_common.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
set(modes "--k1,4" "--k1,3,--k2,6" "--tau,2" "--k1,4,--layers,2,--dropout,0.3"
  "--k1,3,--k2,6,--layers,2,--dropout,0.3")  # commas: one list element per mode
set(i 0)
foreach(mode IN LISTS modes)
  string(REPLACE "," ";" mode "${mode}")
  set(dir ${WORK_DIR}/mode${i})
  math(EXPR i "${i} + 1")
  char_lm_run(whole ${CHAR_LM_TINY} ${mode} --steps 8 --out ${dir}/whole --log-file ${dir}/whole.csv)
  char_lm_run(first ${CHAR_LM_TINY} ${mode} --steps 4 --out ${dir}/split --log-file ${dir}/first.csv)
  char_lm_run(second ${CHAR_LM_TINY} ${mode} --steps 8 --out ${dir}/split --resume ${dir}/split/char_lm.safetensors
    --log-file ${dir}/second.csv)
  file(STRINGS ${dir}/whole.csv whole_rows)
  file(STRINGS ${dir}/first.csv first_rows)
  file(STRINGS ${dir}/second.csv second_rows)
  list(REMOVE_AT second_rows 0)  # the header is in first_rows already
  list(APPEND first_rows ${second_rows})
  list(LENGTH whole_rows n)
  if(NOT n EQUAL 9)
    message(FATAL_ERROR "${mode}: the uninterrupted log has ${n} lines, expected 9")
  endif()
  if(NOT "${whole_rows}" STREQUAL "${first_rows}")
    string(REPLACE ";" "\n" a "${whole_rows}")
    string(REPLACE ";" "\n" b "${first_rows}")
    message(FATAL_ERROR "${mode}: resumed run differs from the uninterrupted one\nuninterrupted:\n${a}\nresumed:\n${b}")
  endif()
endforeach()

# Dropout is not ignored: the same run without it trains on other losses.
file(STRINGS ${WORK_DIR}/mode4/whole.csv with_dropout)
char_lm_run(plain ${CHAR_LM_TINY} --k1 3 --k2 6 --layers 2 --steps 8 --out ${WORK_DIR}/plain
  --log-file ${WORK_DIR}/plain.csv)
file(STRINGS ${WORK_DIR}/plain.csv without_dropout)
if("${with_dropout}" STREQUAL "${without_dropout}")
  message(FATAL_ERROR "--dropout 0.3 gave the losses of a run without dropout")
endif()

# Resuming with another model shape stops with a message naming the option.
execute_process(COMMAND ${CHAR_LM} ${CHAR_LM_TINY} --hidden 13 --steps 9 --out ${WORK_DIR}/mismatch
  --resume ${WORK_DIR}/mode0/split/char_lm.safetensors RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc MATCHES "^[0-9]+$" OR rc EQUAL 0 OR NOT err MATCHES "--hidden 12, this run has --hidden 13")
  message(FATAL_ERROR "resume with --hidden 13 from a --hidden 12 checkpoint: rc '${rc}'\n${out}${err}")
endif()
