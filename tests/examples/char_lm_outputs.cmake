# Outputs are checked before training: an output that is an input (by file identity: the same
# path, another spelling, a symbolic or a hard link) or another output is refused and the input
# keeps its bytes; an unwritable output fails before any training step (no step line printed,
# no log written); a resumed checkpoint whose step or optimizer step count is out of range is
# refused, not trained on forever.
include(${CMAKE_CURRENT_LIST_DIR}/char_lm_common.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(ckpt ${WORK_DIR}/run/char_lm.safetensors)
char_lm_run(first ${CHAR_LM_TINY} --steps 4 --out ${WORK_DIR}/run)
file(SHA256 ${ckpt} ckpt_hash)

# char_lm_refused(<name> <regex> args...): exit code non-zero (not a signal, not a timeout),
# stderr matches regex, and no training step ran (no "step N/M" progress line).
function(char_lm_refused name regex)
  execute_process(COMMAND ${CHAR_LM} ${CHAR_LM_TINY} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
    ERROR_VARIABLE err TIMEOUT 60)
  if(NOT rc MATCHES "^[0-9]+$" OR rc EQUAL 0)
    message(FATAL_ERROR "${name}: expected a non-zero exit code, got '${rc}'\n${out}${err}")
  endif()
  if(NOT err MATCHES "${regex}")
    message(FATAL_ERROR "${name}: stderr does not match '${regex}':\n${err}")
  endif()
  if(out MATCHES "step +[0-9]+/[0-9]+")
    message(FATAL_ERROR "${name}: a training step ran before the refusal:\n${out}")
  endif()
  message(STATUS "${name}: exit ${rc} ok")
endfunction()

# char_lm_unchanged(<name> <file> <hash>): the file still has its bytes.
function(char_lm_unchanged name path hash)
  file(SHA256 ${path} now)
  if(NOT now STREQUAL hash)
    message(FATAL_ERROR "${name}: ${path} was changed")
  endif()
endfunction()

# 1. An output that is an input, under four spellings of the same file.
file(CREATE_LINK ${ckpt} ${WORK_DIR}/symlink.safetensors SYMBOLIC)
file(CREATE_LINK ${ckpt} ${WORK_DIR}/hardlink.safetensors)
set(spellings "${ckpt}" "${WORK_DIR}/run/./char_lm.safetensors" "${WORK_DIR}/symlink.safetensors"
  "${WORK_DIR}/hardlink.safetensors")
foreach(log IN LISTS spellings)
  char_lm_refused("--resume X --log-file ${log}" "--log-file .*is the same file as --resume" --steps 8
    --out ${WORK_DIR}/other --resume ${ckpt} --log-file ${log})
  char_lm_unchanged("--log-file ${log}" ${ckpt} ${ckpt_hash})
endforeach()
char_lm_refused("--log-file = --resume (hard link as the input)" "--log-file .*--resume" --steps 8
  --out ${WORK_DIR}/other --resume ${WORK_DIR}/hardlink.safetensors --log-file ${ckpt})
char_lm_unchanged("hard link as the input" ${ckpt} ${ckpt_hash})

# The training text is an input too: neither the log nor the checkpoint may overwrite it.
file(COPY_FILE ${DATA} ${WORK_DIR}/text.txt)
file(SHA256 ${WORK_DIR}/text.txt text_hash)
char_lm_refused("--log-file = --data" "--log-file .*is the same file as --data" --steps 2 --data ${WORK_DIR}/text.txt
  --out ${WORK_DIR}/other --log-file ${WORK_DIR}/text.txt)
char_lm_refused("--save = --data" "--save .*is the same file as --data" --steps 2 --data ${WORK_DIR}/text.txt
  --out ${WORK_DIR}/other --save ${WORK_DIR}/./text.txt)
char_lm_unchanged("--data" ${WORK_DIR}/text.txt ${text_hash})

# Two outputs on one file.
char_lm_refused("--log-file = gradient_flow.csv" "--log-file .*is the same file as --out \\(gradient_flow.csv\\)"
  --steps 2 --out ${WORK_DIR}/two --log-file ${WORK_DIR}/two/gradient_flow.csv)
char_lm_refused("--save = --log-file" "--log-file .*is the same file as --save" --steps 2 --out ${WORK_DIR}/two
  --save ${WORK_DIR}/two/x --log-file ${WORK_DIR}/two/./x)

# 2. Unwritable outputs fail before training: no step line, and the log file is never created.
set(log ${WORK_DIR}/never.csv)
file(WRITE ${WORK_DIR}/a_file "")
char_lm_refused("--out under a regular file" "--out .*cannot create the directory" --steps 2
  --out ${WORK_DIR}/a_file/sub --log-file ${log})
file(MAKE_DIRECTORY ${WORK_DIR}/dir_ckpt/char_lm.safetensors)
char_lm_refused("checkpoint is a directory" "--out \\(checkpoint\\) .*not a regular file" --steps 2
  --out ${WORK_DIR}/dir_ckpt --log-file ${log})
char_lm_refused("--save is a directory" "--save .*not a regular file" --steps 2 --out ${WORK_DIR}/other
  --save ${WORK_DIR}/dir_ckpt/char_lm.safetensors --log-file ${log})
char_lm_refused("--log-file in a missing directory" "--log-file .*not a directory" --steps 2
  --out ${WORK_DIR}/other --log-file ${WORK_DIR}/missing/dir/log.csv)
if(IS_DIRECTORY /proc/self)  # a directory nobody, not even root, can create files in
  char_lm_refused("--out /proc/self" "--out /proc/self: cannot write into the directory" --steps 2
    --out /proc/self --log-file ${log})
endif()
if(EXISTS ${log})
  message(FATAL_ERROR "the log ${log} was written although the run was refused")
endif()

# 3. A crafted resume: the step, or the optimizer's step count, out of range. The loader itself
# refuses an optimizer step count above 2^53, naming the metadata key.
set(crafted ${WORK_DIR}/crafted.safetensors)
foreach(case "step|9223372036854775807|--resume .*the checkpoint is at step 9223372036854775807"
    "step|-3|--resume .*the checkpoint is at step -3"
    "optim.step|9223372036854775807|metadata 'optim.step' is .9223372036854775807., expected an integer in")
  string(REPLACE "|" ";" case "${case}")
  list(GET case 0 key)
  list(GET case 1 value)
  list(GET case 2 regex)
  execute_process(COMMAND ${SET_METADATA} ${ckpt} ${crafted} ${key} ${value} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "set_checkpoint_metadata ${key} ${value} failed: ${rc}")
  endif()
  char_lm_refused("--resume with ${key} = ${value}" "${regex}" --steps 8 --out ${WORK_DIR}/crafted_out
    --resume ${crafted} --log-file ${log})
endforeach()
if(EXISTS ${log})
  message(FATAL_ERROR "the log ${log} was written although the resume was refused")
endif()
char_lm_unchanged("the checkpoint after every refusal" ${ckpt} ${ckpt_hash})
