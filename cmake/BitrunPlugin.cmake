# bitrun_add_plugin(<target> SOURCES <files...> [ISA_SOURCES <files...> ISA_FLAGS <flags...>] [OUTPUT_DIR <dir>] [NO_INSTALL])
#
# A plugin is a MODULE library linked against the core, built with hidden visibility so only its BOOST_DLL_ALIAS
# entry points are exported. ISA_SOURCES get ISA_FLAGS (e.g. -mavx512bw); SOURCES never do, so the descriptor and
# score code in them can run on any x86-64 CPU without executing an instruction it lacks.
function(bitrun_add_plugin target)
  cmake_parse_arguments(P "NO_INSTALL" "OUTPUT_DIR" "SOURCES;ISA_SOURCES;ISA_FLAGS" ${ARGN})
  add_library(${target} MODULE ${P_SOURCES} ${P_ISA_SOURCES})
  target_link_libraries(${target} PRIVATE bitrun::core)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    INTERPROCEDURAL_OPTIMIZATION OFF)   # LTO could move ISA code into the descriptor path
  if(P_ISA_SOURCES)
    set_source_files_properties(${P_ISA_SOURCES} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "${P_ISA_FLAGS}")
  endif()
  if(P_OUTPUT_DIR)
    set(out "${P_OUTPUT_DIR}")
  else()
    set(out "${BITRUN_PLUGIN_OUTPUT_DIR}")
  endif()
  # Plugins find libbitrun_core.so two levels up (lib/bitrun/plugins -> lib) in both trees.
  set_target_properties(${target} PROPERTIES
    LIBRARY_OUTPUT_DIRECTORY "${out}"
    BUILD_RPATH "$<TARGET_FILE_DIR:bitrun::core>"
    INSTALL_RPATH "$ORIGIN/../..")
  if(NOT P_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION "${BITRUN_PLUGIN_SUBDIR}")
  endif()
endfunction()
