# Resume test: the loss log of 8 steps in one run equals 4 steps + --resume for steps 5..8,
# for each truncation mode (chunked, overlapping, per-output window). Losses are printed with
# 9 significant digits, so equal text means the float32 trajectories agree bit for bit or nearly.
include(${CMAKE_CURRENT_LIST_DIR}/char_lm_common.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
set(modes "--k1,4" "--k1,3,--k2,6" "--tau,2")  # commas: one list element per mode
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

# Resuming with another model shape stops with a message naming the option.
execute_process(COMMAND ${CHAR_LM} ${CHAR_LM_TINY} --hidden 13 --steps 9 --out ${WORK_DIR}/mismatch
  --resume ${WORK_DIR}/mode0/split/char_lm.safetensors RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc MATCHES "^[0-9]+$" OR rc EQUAL 0 OR NOT err MATCHES "--hidden 12, this run has --hidden 13")
  message(FATAL_ERROR "resume with --hidden 13 from a --hidden 12 checkpoint: rc '${rc}'\n${out}${err}")
endif()
