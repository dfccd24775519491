# A resumable training loop under greenq's pause protocol (README, "What a
# job carries, and how it stops"): state in $GREENQ_CHECKPOINT_DIR, saved on
# SIGTERM, resumed from on the next segment, wherever it runs.
import os, signal, sys, time
ckpt = os.path.join(os.environ["GREENQ_CHECKPOINT_DIR"], "step")
step = int(open(ckpt).read()) if os.path.exists(ckpt) else 0
print(f"resuming at step {step}", flush=True)
def save_and_exit(*_):
    open(ckpt, "w").write(str(step)); sys.exit(0)   # paused, not succeeded
signal.signal(signal.SIGTERM, save_and_exit)
while step < 40:
    step += 1; print(f"step {step}", flush=True)
    time.sleep(float(os.environ.get("STEP_S", 1)))   # one unit of training
    open(ckpt, "w").write(str(step))
print("done", flush=True)
