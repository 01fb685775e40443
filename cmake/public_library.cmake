# tapegrad_public_library(<target> <export name> <sources>...): one of the installed libraries
# (tapegrad::<export name>): position-independent, its headers in <current dir>/include in the
# build tree and in the install prefix's include directory once installed.
function(tapegrad_public_library target export_name)
  add_library(${target} ${ARGN})
  add_library(tapegrad::${export_name} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name} OUTPUT_NAME ${target}
    POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endfunction()
