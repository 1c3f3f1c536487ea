#!/usr/bin/env python3
"""A pretend training job in Python: markers are just lines on stdout (flush them!)."""

import sys
import time


def marker(text: str) -> None:
    print(text, flush=True)


marker("STEP_START:load data[duration=1]")
print("loaded 10,000 rows")
marker("STEP_COMPLETE:load data")

marker("STEP_START:train {duration: 2, stop_on_error: true}")
for epoch in range(1, 4):
    print(f"epoch {epoch} loss={1 / epoch:.3f}", flush=True)
    time.sleep(0.2)
marker(f"META:final_loss:{1 / 3:.3f}")
marker("STEP_COMPLETE:train")

marker("STEP_START:evaluate")
print("accuracy 0.93", file=sys.stderr)
with open("metrics.json", "w") as f:
    f.write('{"accuracy": 0.93}\n')
marker("ARTIFACT:metrics.json:Evaluation metrics")
marker("STEP_COMPLETE:evaluate")
