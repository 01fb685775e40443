# char_lm under mpirun: the loss log of 8 steps on 2 ranks equals the single process's, and 4
# steps on 2 ranks resumed on 3 ranks for steps 5..8 equal the uninterrupted single process, for
# the whole-chunk path (--k1 4) and the per-step path (--k1 3 --k2 6), without and with dropout
# (each rank draws its rows' masks of the global batch). The global batch of 3 sequences splits
# unevenly (2 + 1 rows), so the share weighting is exercised. Only the summation order differs
# from one process, so the logs agree to float32 rounding: 1e-4 relative. A --batch smaller than
# the number of ranks must stop the job with a message.
include(${CMAKE_CURRENT_LIST_DIR}/char_lm_common.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(MPI_RUN ${MPIEXEC} --oversubscribe -np)

# char_lm_mpi_run(<ranks> args...): char_lm on <ranks> ranks; fails the test unless it exits 0.
function(char_lm_mpi_run ranks)
  execute_process(COMMAND ${MPI_RUN} ${ranks} ${CHAR_LM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE stdout
    ERROR_VARIABLE stderr)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "mpirun -np ${ranks} char_lm ${ARGN} exited with ${rc}\nstdout:\n${stdout}\nstderr:\n${stderr}")
  endif()
endfunction()

# A decimal like 4.16071844 as an integer count of 1e-9 (the logs print 9 significant digits,
# positive values of order 0.01 to 10).
function(to_nano out value)
  if(NOT value MATCHES "^([0-9]+)\\.([0-9]+)$")
    message(FATAL_ERROR "unexpected number '${value}' in a loss log")
  endif()
  set(int ${CMAKE_MATCH_1})
  string(SUBSTRING "${CMAKE_MATCH_2}000000000" 0 9 frac)
  string(REGEX REPLACE "^0+([0-9])" "\\1" frac "${frac}")
  math(EXPR n "${int} * 1000000000 + ${frac}")
  set(${out} ${n} PARENT_SCOPE)
endfunction()

# Fails unless the logs have the same steps and every loss and gradient norm agree to 1e-4.
function(expect_close_logs what expected actual)
  list(LENGTH expected n)
  list(LENGTH actual m)
  if(NOT n EQUAL 9 OR NOT m EQUAL 9)
    message(FATAL_ERROR "${what}: logs of ${n} and ${m} lines, expected 9 (a header and 8 steps)")
  endif()
  foreach(i RANGE 1 8)
    list(GET expected ${i} e)
    list(GET actual ${i} a)
    string(REPLACE "," ";" e "${e}")
    string(REPLACE "," ";" a "${a}")
    list(GET e 0 e_step)
    list(GET a 0 a_step)
    if(NOT e_step EQUAL i OR NOT a_step EQUAL i)
      message(FATAL_ERROR "${what}: line ${i} is step ${a_step}, expected ${i}")
    endif()
    foreach(col 1 2)
      list(GET e ${col} ev)
      list(GET a ${col} av)
      to_nano(en ${ev})
      to_nano(an ${av})
      math(EXPR diff "${en} - ${an}")
      if(diff LESS 0)
        math(EXPR diff "-${diff}")
      endif()
      math(EXPR scaled "${diff} * 10000")
      if(scaled GREATER en)
        message(FATAL_ERROR "${what}: step ${i} column ${col}: ${av}, the single process has ${ev}")
      endif()
    endforeach()
  endforeach()
endfunction()

set(modes "--k1,4" "--k1,3,--k2,6" "--k1,4,--layers,2,--dropout,0.3"
  "--k1,3,--k2,6,--layers,2,--dropout,0.3")
set(i 0)
foreach(mode IN LISTS modes)
  string(REPLACE "," ";" mode "${mode}")
  set(dir ${WORK_DIR}/mode${i})
  math(EXPR i "${i} + 1")
  set(args ${CHAR_LM_TINY} ${mode} --threads 1)
  char_lm_run(one ${args} --steps 8 --out ${dir}/one --log-file ${dir}/one.csv)
  char_lm_mpi_run(2 ${args} --steps 8 --out ${dir}/two --log-file ${dir}/two.csv)
  char_lm_mpi_run(2 ${args} --steps 4 --out ${dir}/split --log-file ${dir}/first.csv)
  char_lm_mpi_run(3 ${args} --steps 8 --out ${dir}/split --resume ${dir}/split/char_lm.safetensors
    --log-file ${dir}/second.csv)
  file(STRINGS ${dir}/one.csv one)
  file(STRINGS ${dir}/two.csv two)
  file(STRINGS ${dir}/first.csv resumed)
  file(STRINGS ${dir}/second.csv second)
  list(REMOVE_AT second 0)
  list(APPEND resumed ${second})
  expect_close_logs("${mode}: 2 ranks" "${one}" "${two}")
  expect_close_logs("${mode}: 2 ranks, resumed on 3" "${one}" "${resumed}")
endforeach()

# The logs are not trivially equal: another seed trains on other losses (and fails the check).
char_lm_run(other ${CHAR_LM_TINY} --seed 8 --k1 4 --threads 1 --steps 8 --out ${WORK_DIR}/other
  --log-file ${WORK_DIR}/other.csv)
file(STRINGS ${WORK_DIR}/other.csv other)
file(STRINGS ${WORK_DIR}/mode0/one.csv one)
list(GET other 1 o1)
list(GET one 1 e1)
if(o1 STREQUAL e1)
  message(FATAL_ERROR "--seed 8 gave the first loss of --seed 7: ${o1}")
endif()

# A batch smaller than the number of ranks stops every rank with a message, not a hang.
execute_process(COMMAND ${MPI_RUN} 2 ${CHAR_LM} ${CHAR_LM_TINY} --batch 1 --steps 2 --out ${WORK_DIR}/small
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
if(NOT rc MATCHES "^[0-9]+$" OR rc EQUAL 0 OR NOT err MATCHES "--batch 1 is smaller than the 2 ranks")
  message(FATAL_ERROR "mpirun -np 2 char_lm --batch 1: rc '${rc}'\n${out}${err}")
endif()
