#!/usr/bin/env bash
# Packs every GPU measurement into .gpu/ for one call of the accelerator machine, which has no
# Node.js, no npm registry and no node_modules (device time is short: one prepared call):
#   bench/gpu-cli-pack.sh          the CLI end to end (.gpu/cli/app.mjs), Node, Dawn, loaders, data
#   .gpu/cli/profile.mjs           bench/gpu-profile.ts: launches, GPU ms per program, peak memory
#   .gpu/cli/train.mjs             bench/gpu-train.ts: correctness against cpu, step times
#   (the three bundles travel as .gpu/cli.tar.xz)
#   .gpu/english.tar.xz            the text-quality sets' fit/val/test CSVs (bench/gpu-english-data.ts)
#   .gpu/run-all.sh PARTS          runs the parts named (profile,train,cli,english; default the first three), each
#                                  under its own time limit, JSON lines into $OUT (or ./gpu-out)
# usage (project root): bash bench/gpu-pack-all.sh; then on the device, carry [".gpu"]:
#   timeout 420 bash .gpu/run-all.sh profile,train,cli
# english: pre-trains text-small on Brown (bench/gpu-cli.ts --only english) and fine-tunes both sets
#   from scratch and from it; the run comes back as $OUT/english-run.tar.xz.part-aa, -ab...
#   (ENGLISH_EPOCHS; ENGLISH_LIMIT: seconds for the part; ENGLISH_TEXTS=N at pack time: N texts a split, to test)
# PROFILE_RUNS='--model text-tiny --batch 32;--model revcol-t --batch 64 --cpu-profile $OUT/t.cpuprofile'
#   replaces the built-in list of gpu-profile runs; CLI_ARGS='--only spam' narrows the CLI part.
# Locally on lavapipe: SKIP_GL=1 REVCOL_WEBGPU_SOFTWARE=1 PROFILE_QUICK=1 bash .gpu/run-all.sh profile
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
bash bench/gpu-cli-pack.sh
for entry in profile train; do
  npx --yes esbuild@0.25.12 "bench/gpu-$entry.ts" --bundle --platform=node --format=esm --target=node20 \
    --ignore-annotations --external:'*.node' --outfile=".gpu/cli/$entry.mjs" --log-level=warning \
    --banner:js="import { createRequire as __revcolCreateRequire } from 'module'; const require = __revcolCreateRequire(import.meta.url);"
done
# the evaluation sets for the english part (bench/gpu-english-data.ts: fit/val/test CSVs, seed 0)
english=$(mktemp -d)
npx tsx bench/gpu-english-data.ts "$english/data" ${ENGLISH_TEXTS:+--limit $ENGLISH_TEXTS} > /dev/null
tar -C "$english" -cf - data | xz -T2 -6 > .gpu/english.tar.xz
rm -rf "$english"
# the bundles compress 6x: the tree that travels (64 MiB in all) must hold them and the project
tar -C .gpu -cf - cli | xz -T2 -6 > .gpu/cli.tar.xz
rm -rf .gpu/cli .gpu/run-cli.sh
git rev-parse --short HEAD > .gpu/commit
[ -z "$(git status --porcelain --untracked-files=no)" ] || sed -i 's/$/+dirty/' .gpu/commit
cat > .gpu/run-all.sh <<'RUN'
#!/usr/bin/env bash
# runs on the accelerator machine: sets up Node, Dawn and the loaders once, then each part
parts=${1:-profile,train,cli}
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
source "$(dirname "$0")/setup.sh"   # from bench/gpu-cli-pack.sh: sets $here and $node
tar -xJf "$here/cli.tar.xz" -C "$here"
export REVCOL_COMMIT=$(cat "$here/commit")
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee "$out/device.txt" || true
t0=$SECONDS
if [[ ,$parts, == *,profile,* ]]; then
  # the release's nano network (ImageNet-free 32x32 config) and RevCol-T at the PyTorch figures' batch
  nano='{"channels":[32,64,96,128],"layers":[1,1,2,1],"columns":4,"stemPatch":4}'
  if [ -n "${PROFILE_RUNS:-}" ]; then
    IFS=';' read -r -a runs <<< "$PROFILE_RUNS"   # your own runs: argument lists separated by ';'
  elif [ -n "${PROFILE_QUICK:-}" ]; then
    runs=("--model revcol-nano-32 --batch 4 --steps 1" "--model text-micro --batch 2 --length 32 --steps 1")
  else
    # each model first with revcol's defaults (the product kernel chosen per transpose form by the
    # start-up timing, recorded as gemmTuning), then one setting changed at a time:
    # --gemm off|on: tfjs's products, or the 64 x 64-tile one for every form (src/backends/webgpu-gemm.ts);
    # --row-lanes 64: LayerNorm and softmax rows a workgroup each, as before lanes per row (kernels-webgpu.ts);
    # --vec4 off: element-wise programs one element a thread, as before four a thread (kernels-webgpu.ts);
    # --gpu-wait spin: dawn.node's own polling while a read waits (a core at 100%, and its garbage),
    #   against revcol's default, a short spin then a 1 ms timer (src/backends/dawn-polling.ts);
    # --dawn-flags: Dawn's toggles that drop the shaders' bounds clamps and workgroup-memory zeroing
    #   (not revcol's default: docs/kernels.md, "Dawn's toggles")
    toggles="--dawn-flags enable-dawn-features=disable_robustness,disable_workgroup_init"
    tiny="--model revcol-t --batch 64 --steps 3"
    small="--model revcol-nano-32 --batch 256 --steps 3 --config $nano"
    text="--model text-tiny --batch 32 --steps 3"
    runs=("$tiny" "$tiny --gemm off" "$tiny --gemm on" "$tiny --row-lanes 64" "$tiny --vec4 off" "$tiny --gpu-wait spin" "$tiny $toggles" "$tiny --mode plain"
          "$small" "$small --gemm off" "$small --gpu-wait spin"
          "$text" "$text --gemm off" "$text --row-lanes 64" "$text --vec4 off" "$text --gpu-wait spin" "$text $toggles")
  fi
  for a in "${runs[@]}"; do
    echo "== gpu-profile $a ($((SECONDS - t0)) s)"
    # shellcheck disable=SC2086
    timeout "${PROFILE_LIMIT:-90}" "$node" "$here/cli/profile.mjs" $a --json >> "$out/gpu-profile.jsonl" || echo "gpu-profile $a: exit $?" | tee -a "$out/errors.txt"
  done
fi
if [[ ,$parts, == *,train,* ]]; then
  echo "== gpu-train ($((SECONDS - t0)) s)"
  timeout "${TRAIN_LIMIT:-120}" "$node" "$here/cli/train.mjs" --total-s "${TRAIN_TOTAL_S:-100}" ${TRAIN_ARGS:-} > "$out/gpu-train.jsonl" || echo "gpu-train: exit $?" | tee -a "$out/errors.txt"
fi
if [[ ,$parts, == *,cli,* ]]; then
  echo "== gpu-cli ($((SECONDS - t0)) s)"
  (cd "$here/cli" && timeout "${CLI_LIMIT:-240}" "$node" app.mjs --total-s "${CLI_TOTAL_S:-200}" ${CLI_ARGS:-} --out /tmp/gcli) || echo "gpu-cli: exit $?" | tee -a "$out/errors.txt"
fi
if [[ ,$parts, == *,english,* ]]; then
  echo "== english ($((SECONDS - t0)) s)"
  mkdir -p /tmp/english && tar -xJf "$here/english.tar.xz" -C /tmp/english
  (cd "$here/cli" && timeout "${ENGLISH_LIMIT:-420}" "$node" app.mjs --only english --english-data /tmp/english/data --english-out /tmp/english/run \
    --english-epochs "${ENGLISH_EPOCHS:-20}" --total-s "${ENGLISH_LIMIT:-420}" ${ENGLISH_ARGS:-} --out /tmp/gcli-en) || echo "english: exit $?" | tee -a "$out/errors.txt"
  # the pre-trained run (not its resume checkpoint), in parts under the 16 MiB a returned file may have
  if [ -d /tmp/english/run ]; then
    tar -C /tmp/english --exclude='last.ckpt*' -cf - run | xz -T4 -3 | split -b 15m - "$out/english-run.tar.xz.part-"
  fi
fi
echo "== done ($((SECONDS - t0)) s)"
RUN
chmod +x .gpu/run-all.sh
chmod -R a+r .gpu
du -sh .gpu | sed 's/^/gpu-pack-all: /'
