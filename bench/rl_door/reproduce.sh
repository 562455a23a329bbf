#!/usr/bin/env bash
# Reproduces bench/rl_door: the flow, the four SAC policies (2 embodiments x 2 rewards, seed 0),
# their 100-episode evaluations on door placements never used in training (seeds 1000..1099),
# and the shipped policy. Run from the repository root with the 'rl' extra installed, on a
# machine nobody else is using (the committed numbers were measured under
# `flock /tmp/d2f-heavy.lock` on a shared 2-core machine, all five trainings in parallel).
set -euo pipefail
export MUJOCO_GL=${MUJOCO_GL:-egl}
D=bench/rl_door
S=${STEPS:-50000}
dream2flow() { .venv/bin/python -m dream2flow.cli "$@"; }

dream2flow rl flow --scene-seed 0 --out $D/flow            # [inputs: privileged]
for emb in panda floating; do
  for rew in flow object_state; do
    extra=(); [ $rew = flow ] && extra=(--flow $D/flow/flow.npz)
    dream2flow rl train --env door --embodiment $emb --reward $rew --steps $S --seed 0 "${extra[@]}" \
        --out $D/${emb}_${rew} &
  done
done
wait
for emb in panda floating; do
  for rew in flow object_state; do
    dream2flow rl eval --policy $D/${emb}_${rew}/policy.onnx --episodes 100 --seed 1000 \
        --json $D/${emb}_${rew}/eval.json
  done
done
.venv/bin/python export_tools/ship_policy.py --run $D/panda_flow --name door_panda_flow_reward
dream2flow rl eval --policy door_panda_flow_reward --episodes 100 --seed 1000 --json $D/door_panda_flow_reward.eval.json
.venv/bin/python bench/rl_door/table.py > $D/table.md
