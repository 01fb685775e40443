# A rank of `mpirun -np 2 char_lm` killed with SIGKILL after the first checkpoints: mpirun ends
# the job within 30 s with a non-zero exit, and the last checkpoint is whole: one process resumes
# from it and trains two more steps.
include(${CMAKE_CURRENT_LIST_DIR}/char_lm_common.cmake)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(ckpt ${WORK_DIR}/run/char_lm.safetensors)

# The shell starts the job, waits for a checkpoint, kills mpirun's newest child (a rank) and
# reports the job's exit code and how long it took to end (at most 30 s, then it is killed).
string(REPLACE ";" " " tiny "${CHAR_LM_TINY}")
set(script [=[
"$MPIEXEC" --oversubscribe -np 2 "$CHAR_LM" $TINY --threads 1 --k1 4 --steps 10000000 --eval-every 2 \
  --sample 0 --out "$DIR/run" > "$DIR/job.log" 2>&1 &
job=$!
i=0
while [ ! -f "$CKPT" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -f "$CKPT" ]; then kill -9 $job; echo "no checkpoint after 60 s"; exit 90; fi
sleep 0.5
rank=$(pgrep -n -P $job)
if [ -z "$rank" ]; then kill -9 $job; echo "mpirun has no child process"; exit 91; fi
kill -9 $rank
i=0
while kill -0 $job 2> /dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $job 2> /dev/null; then kill -9 $job; echo "mpirun still running 30 s after the kill"; exit 92; fi
wait $job
echo "job exit $?"
]=])
execute_process(COMMAND ${CMAKE_COMMAND} -E env MPIEXEC=${MPIEXEC} CHAR_LM=${CHAR_LM} "TINY=${tiny}" DIR=${WORK_DIR}
  CKPT=${ckpt} sh -c "${script}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ ${WORK_DIR}/job.log job_log)
if(NOT rc EQUAL 0 OR NOT out MATCHES "job exit ([0-9]+)")
  message(FATAL_ERROR "the kill did not go as planned (rc ${rc}): ${out}${err}\njob output:\n${job_log}")
endif()
if(CMAKE_MATCH_1 EQUAL 0)
  message(FATAL_ERROR "mpirun exited 0 after one of its ranks was killed\njob output:\n${job_log}")
endif()

# The checkpoint is whole: one process resumes from its step and trains two more.
file(READ ${ckpt} header OFFSET 8 LIMIT 4000)  # after the header's 8-byte length
if(NOT header MATCHES "[,{]\"step\":\"([0-9]+)\"")
  message(FATAL_ERROR "no step in the checkpoint's metadata: ${header}")
endif()
set(saved ${CMAKE_MATCH_1})
math(EXPR until "${saved} + 2")
char_lm_run(resumed ${CHAR_LM_TINY} --threads 1 --k1 4 --steps ${until} --eval-every 0 --sample 0
  --out ${WORK_DIR}/resumed --resume ${ckpt} --log-file ${WORK_DIR}/resumed.csv)
file(STRINGS ${WORK_DIR}/resumed.csv rows)
math(EXPR next "${saved} + 1")
if(NOT resumed MATCHES "resumed  from [^\n]* at step ${saved}\n" OR NOT rows MATCHES "^step,train_loss,grad_norm;${next},")
  message(FATAL_ERROR "resuming from step ${saved}:\n${resumed}\nlog: ${rows}")
endif()
