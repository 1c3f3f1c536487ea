"""One `stepflow run`, in parts: execute() builds it under one ExitStack from

- options     what the run was asked to do (RunOptions) and what it gave (RunResult);
- supervisor  spawn the command, stream its output, pass signals on, reap it;
- secrets     the one owner of masking: values given and `::add-mask::` lines learnt;
- lines       cut chunks into lines and hand marker lines to the dialects;
- recorder    markers and lines -> the run's state and typed events (stepflow.events) to sinks;
- writer      the store sink: events -> store writes, committed from a background thread;
- resources, artifacts  CPU/memory samples; files a run announces, copied aside.

Nothing is imported here, so `import stepflow.run.x` pays for x alone.
"""
