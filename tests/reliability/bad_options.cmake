# Runs an example binary (EXE, named NAME) with bad options: each must exit with a non-zero
# code (not a signal: a crash shows as a string in RESULT_VARIABLE) and print a message that
# contains the expected words. Cases: "arg,arg,...|expected regex", in <NAME>_cases (set here,
# or by a script that includes this one, as tests/examples/char_lm_bad_options.cmake does).
set(custom_op_cases
  "--steps,0|--steps must be an integer in \\[1, 1000000\\], got '0'"
  "--steps,-5|--steps must be an integer"
  "--steps,abc|got 'abc'"
  "--steps,99999999999999999999|--steps must be an integer"
  "--seed,-1|--seed must be an integer in \\[0, 1000000\\]"
  "--seed,1.5|--seed"
  "--steps|unknown option '--steps'"
  "--frobnicate|unknown option '--frobnicate'")
set(bptt_compare_cases
  "--model,lstmx|--model must be"
  "--model|unknown option '--model'"
  "--tau,3|unknown option '--tau'"
  "--json,--nope|unknown option '--nope'")
foreach(case IN LISTS ${NAME}_cases)
  string(FIND "${case}" "|" bar REVERSE)
  string(SUBSTRING "${case}" 0 ${bar} args)
  math(EXPR rest "${bar} + 1")
  string(SUBSTRING "${case}" ${rest} -1 expect)
  string(REPLACE "," ";" args "${args}")
  execute_process(COMMAND ${EXE} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 60)
  if(NOT rc MATCHES "^[0-9]+$" OR rc EQUAL 0)
    message(FATAL_ERROR "${NAME} ${args}: expected a non-zero exit code, got '${rc}'\n${out}${err}")
  endif()
  if(NOT "${out}${err}" MATCHES "${expect}")
    message(FATAL_ERROR "${NAME} ${args}: the message does not match '${expect}':\n${out}${err}")
  endif()
  message(STATUS "${NAME} ${args}: exit ${rc} ok")
endforeach()
