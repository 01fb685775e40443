# Driven by ctest (see CMakeLists.txt): cmake --install BUILD_DIR into WORK_DIR/prefix, then
# configure + build + run the consumer project against that prefix. Any failing step fails the
# test, and so does a warning anywhere in the consumer's build output.
foreach(var BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CONFIG CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_install_test: -D${var}=... is required")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(consumer_build ${WORK_DIR}/consumer-build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run_step what)
  message(STATUS "install_consumer: ${what}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc})")
  endif()
  string(REGEX MATCH "[^\n]*[Ww]arning[^\n]*" warning "${out}")
  if(warning)
    message(FATAL_ERROR "install_consumer: ${what} printed a warning: ${warning}")
  endif()
endfunction()

run_step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} --config ${CONFIG})
foreach(f include/tapegrad/tape.h include/tapegrad/threading.h include/tapegrad/nn/module.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "install_consumer: ${prefix}/${f} was not installed")
  endif()
endforeach()
if(DISTRIBUTED AND NOT EXISTS ${prefix}/include/tapegrad/distributed/gradient_sync.h)
  message(FATAL_ERROR "install_consumer: tapegrad::distributed was built but its headers were not installed")
endif()
# Only public headers: the kernels are private to the library.
file(GLOB_RECURSE installed_headers RELATIVE ${prefix}/include ${prefix}/include/*)
foreach(f ${installed_headers})
  file(READ ${prefix}/include/${f} text)
  if(f MATCHES "^tapegrad/kernels/" OR text MATCHES "tapegrad/kernels/")
    message(FATAL_ERROR "install_consumer: ${f} is or includes a private kernel header")
  endif()
endforeach()

# Only the scratch prefix may satisfy find_package: no package registries, no system tapegrad.
run_step("configure consumer" ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${consumer_build}
  -G ${GENERATOR}
  -DCMAKE_BUILD_TYPE=${CONFIG}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  -DCMAKE_CXX_FLAGS=${CONSUMER_FLAGS}
  -DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_FLAGS}
  -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
  -DEXPECTED_PREFIX=${prefix})
run_step("build consumer" ${CMAKE_COMMAND} --build ${consumer_build} --config ${CONFIG})

run_step("run consumer" ${consumer_build}/app)
run_step("run consumer built with tapegrad::native" ${consumer_build}/app_native)
