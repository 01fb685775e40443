# tapegrad_extract_snippets(<markdown> <out_dir> <stem> <doc_label> <umbrella headers> <out_var>)
#
# Writes every ```cpp / ```c++ block of <markdown> to <out_dir>/<stem>_<n>.cpp (n = 1, 2, ... in
# the order of the blocks) and sets <out_var> to a list of "<stem>_<n>|program" or
# "<stem>_<n>|fragment" entries. The rules the docs follow:
#
# - A block with `int main` is a whole program: it is written as it is, built and run.
# - Any other block is a fragment. Its #include lines move to the top of the file, after the
#   umbrella headers; `using namespace tapegrad;` follows (not tapegrad::nn as well: both have a
#   mse_loss, so docs write nn::). A block that declares something at
#   namespace scope (a line starting with template, struct, class, namespace or enum) stays at
#   namespace scope; every other fragment becomes the body of a function that is compiled and
#   linked but never called.
# - An HTML comment `<!-- snippet-setup ... -->` right before a block (blank lines may sit
#   between) is invisible to readers and is prepended to the block in the same scope: it
#   declares what the fragment uses (the tape, the cell, x, T, ...). Its #include lines move to
#   the top too; `#include "<stem>_<n>.cpp"` brings in an earlier fragment of the same doc
#   (fragment files have no main, so they can be included).
#
# #line directives name the markdown file and line, so a compile error reads
# "docs/nn.md:25: error: ...". A file is rewritten only when its text changes, so touching one
# doc rebuilds only its snippets.

# While a doc is a CMake list of lines, the characters lists treat specially (';', '[' and ']',
# and a '\' that would escape a ';') stand as placeholders @<NAME>@.
set(_tapegrad_snippet_BSL "\\")
set(_tapegrad_snippet_SEMI ";")
set(_tapegrad_snippet_LBR "[")
set(_tapegrad_snippet_RBR "]")

# escape: characters -> placeholders; otherwise placeholders -> characters.
function(_tapegrad_snippet_swap escape text out)
  foreach(name BSL SEMI LBR RBR)
    if(escape)
      string(REPLACE "${_tapegrad_snippet_${name}}" "@${name}@" text "${text}")
    else()
      string(REPLACE "@${name}@" "${_tapegrad_snippet_${name}}" text "${text}")
    endif()
  endforeach()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Writes one snippet file from its setup and block lines (escaped, each "<md line>:<text>").
function(_tapegrad_write_snippet path doc_label setup_lines block_lines umbrella out_kind)
  set(all_lines ${setup_lines} ${block_lines})
  set(is_program FALSE)
  set(is_file_scope FALSE)
  foreach(entry IN LISTS block_lines)
    string(REGEX REPLACE "^[0-9]+:" "" text "${entry}")
    if(text MATCHES "int main *\\(")
      set(is_program TRUE)
    endif()
    if(text MATCHES "^(template|struct|class|namespace|enum)( |<|$)")
      set(is_file_scope TRUE)
    endif()
  endforeach()

  # A #line directive starts every run of consecutive markdown lines in each part.
  set(includes "")
  set(body "")
  set(next_include_line -1)
  set(next_body_line -1)
  foreach(entry IN LISTS all_lines)
    string(REGEX MATCH "^[0-9]+" line "${entry}")
    string(REGEX REPLACE "^[0-9]+:" "" text "${entry}")
    _tapegrad_snippet_swap(FALSE "${text}" text)
    if(NOT is_program AND text MATCHES "^[ \t]*#[ \t]*include")
      set(part includes)
    else()
      set(part body)
    endif()
    if(NOT line EQUAL next_${part}_line)
      string(APPEND ${part} "#line ${line} \"${doc_label}\"\n")
    endif()
    string(APPEND ${part} "${text}\n")
    math(EXPR next_${part}_line "${line} + 1")
  endforeach()

  get_filename_component(name ${path} NAME_WE)
  set(header "// Generated from ${doc_label} by tests/docs/extract_snippets.cmake: edit the doc.\n")
  if(is_program)
    set(content "${header}${body}")
    set(kind program)
  else()
    string(TOUPPER "TAPEGRAD_SNIPPET_${name}" guard)
    set(content "${header}#ifndef ${guard}\n#define ${guard}\n")
    foreach(h IN LISTS umbrella)
      string(APPEND content "#include <${h}>\n")
    endforeach()
    string(APPEND content "#include <algorithm>\n#include <cstdio>\n#include <iostream>\n#include <random>\n"
      "#include <span>\n#include <string>\n#include <vector>\n${includes}using namespace tapegrad;\n")
    if(is_file_scope)
      string(APPEND content "${body}")
    else()
      string(APPEND content "void snippet_${name}();\nvoid snippet_${name}() {\n${body}}\n")
    endif()
    string(APPEND content "#endif\n")
    set(kind fragment)
  endif()
  # configure_file leaves an unchanged file alone, so its target is not rebuilt.
  file(WRITE ${path}.new "${content}")
  configure_file(${path}.new ${path} COPYONLY)
  file(REMOVE ${path}.new)
  set(${out_kind} ${kind} PARENT_SCOPE)
endfunction()

function(tapegrad_extract_snippets markdown out_dir stem doc_label umbrella out_var)
  file(READ ${markdown} markdown_text)
  _tapegrad_snippet_swap(TRUE "${markdown_text}" markdown_text)
  string(REPLACE "\n" ";" lines "${markdown_text}")

  set(result "")
  set(n 0)
  set(line_no 0)
  set(state text)          # text | setup | block | other_block
  set(setup "")            # the pending snippet-setup lines
  set(setup_pending FALSE)
  set(block "")
  foreach(raw IN LISTS lines)
    math(EXPR line_no "${line_no} + 1")
    if(state STREQUAL "block")
      if(raw MATCHES "^```")
        math(EXPR n "${n} + 1")
        set(path ${out_dir}/${stem}_${n}.cpp)
        _tapegrad_write_snippet(${path} ${doc_label} "${setup}" "${block}" "${umbrella}" kind)
        list(APPEND result "${stem}_${n}|${kind}")
        set(state text)
        set(setup "")
        set(setup_pending FALSE)
        set(block "")
      else()
        list(APPEND block "${line_no}:${raw}")
      endif()
    elseif(state STREQUAL "other_block")
      if(raw MATCHES "^```")
        set(state text)
      endif()
    elseif(state STREQUAL "setup")
      if(raw MATCHES "^-->")
        set(state text)
        set(setup_pending TRUE)
      else()
        list(APPEND setup "${line_no}:${raw}")
      endif()
    else()
      if(raw MATCHES "^```(cpp|c\\+\\+)[ \t]*$")
        if(NOT setup_pending)
          set(setup "")
        endif()
        set(state block)
      elseif(raw MATCHES "^```")
        set(state other_block)
        set(setup "")
        set(setup_pending FALSE)
      elseif(raw MATCHES "^<!-- snippet-setup[ \t]*$")
        set(state setup)
        set(setup "")
      elseif(NOT raw MATCHES "^[ \t]*$")
        set(setup "")
        set(setup_pending FALSE)
      endif()
    endif()
  endforeach()
  if(NOT state STREQUAL "text" AND NOT state STREQUAL "other_block")
    message(FATAL_ERROR "${doc_label}: a ```cpp block or a snippet-setup comment is not closed")
  endif()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()
