# Installs the libraries, headers and a CMake package so downstream projects can
# find_package(tapegrad REQUIRED) and link tapegrad::autodiff / tapegrad::nn, tapegrad::distributed
# when it was built (MPI found), and, to compile for their own CPU, tapegrad::native.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(tapegrad_install_targets tapegrad_autodiff tapegrad_nn tapegrad_native)
set(tapegrad_install_headers autodiff/include/tapegrad nn/include/tapegrad)
if(TAPEGRAD_HAS_DISTRIBUTED)
  list(APPEND tapegrad_install_targets tapegrad_distributed)
  list(APPEND tapegrad_install_headers distributed/include/tapegrad)
endif()
install(TARGETS ${tapegrad_install_targets} EXPORT tapegradTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${tapegrad_install_headers} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT tapegradTargets NAMESPACE tapegrad:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/tapegradConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/tapegradConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/tapegradConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tapegradConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/tapegradConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)
