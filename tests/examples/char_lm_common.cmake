# Shared by the char_lm tests: tiny model settings and a runner that fails on a non-zero exit.
set(CHAR_LM_TINY --hidden 12 --embed 6 --seq-len 12 --batch 3 --eval-every 3 --eval-batches 1 --sample 20
  --progress plain --seed 7)

# char_lm_run(<out-var> args...): runs char_lm, fails the test unless it exits 0; stdout in <out-var>.
function(char_lm_run out)
  execute_process(COMMAND ${CHAR_LM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "char_lm ${ARGN} exited with ${rc}\nstdout:\n${stdout}\nstderr:\n${stderr}")
  endif()
  set(${out} "${stdout}" PARENT_SCOPE)
endfunction()
