#!/usr/bin/env bash
# Builds tfjs-node's native binding against the TensorFlow C library inside a pip TensorFlow wheel.
#
# Why: tfjs-node's own install script downloads libtensorflow 2.9.1 from a CDN. That fails offline and
# its GPU build only knows CUDA 11.2. The pip wheels carry a newer, complete TensorFlow C library
# (libtensorflow_cc.so.2 exports the C API) that the binding builds against unchanged.
#
# Usage: npm run setup:native                  # CPU: tensorflow-cpu wheel + @tensorflow/tfjs-node
#        npm run setup:native -- --gpu         # CUDA 12 box: tensorflow wheel + @tensorflow/tfjs-node-gpu
# Env:   IKL_TF_WHEEL=/path/to/wheel.whl        use this wheel instead of `pip download`
#        IKL_TF_VERSION=2.21.0                  TensorFlow version to fetch with pip
#        IKL_TF_CACHE=~/.cache/ikl-at           where downloaded wheels are kept
#        IKL_SETUP_FORCE=1                      rebuild even if a working binding is present
# Idempotent: a binding that already loads and carries this repo's patch (scripts/native/) is left alone.
#
# The patch (scripts/native/tfjs-node-4.22.0.patch, pinned to tfjs-node 4.22.0) extends the binding where
# TensorFlow's C API offers what tfjs hides: list(string)/list(type) op attributes, op placement, collective ops
# from a ServerDef (abort, peer health), the device list. The binding reports it as `binding.IKL_PATCH`.
set -euo pipefail

say() { printf '[setup:native] %s\n' "$*" >&2; }
die() { printf '[setup:native] error: %s\n' "$*" >&2; exit 1; }

variant=cpu
for arg in "$@"; do
  case "$arg" in
    --gpu) variant=gpu ;;
    --cpu) variant=cpu ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (expected --cpu or --gpu)" ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tf_version=${IKL_TF_VERSION:-2.21.0}
tfjs_version=4.22.0
if [ "$variant" = gpu ]; then pkg=@tensorflow/tfjs-node-gpu; wheel_name=tensorflow; else pkg=@tensorflow/tfjs-node; wheel_name=tensorflow-cpu; fi
pkgdir="$root/node_modules/$pkg"

patch_file="$root/scripts/native/tfjs-node-$tfjs_version.patch"
patch_version=1  # the IKL_PATCH the patched binding reports (tfjs_binding.cc); bump with the patch

binding_loads() {
  [ -d "$pkgdir" ] || return 1
  (cd "$root" && node -e "require('$pkg'); " >/dev/null 2>&1)
}

# The binding loads and was built from the patched sources (older builds report no IKL_PATCH: rebuilt).
binding_patched() {
  (cd "$root" && node -e "const tf = require('$pkg'); process.exit(tf.backend().binding.IKL_PATCH === $patch_version ? 0 : 1)" >/dev/null 2>&1)
}

# Applies the patch to the package's binding sources once (a marker line says it is applied).
patch_binding() {
  local src="$pkgdir/binding/tfjs_binding.cc"
  if grep -q "\"IKL_PATCH\", $patch_version)" "$src"; then return 0; fi
  if grep -q '"IKL_PATCH"' "$src"; then
    die "$pkgdir/binding carries another version of the ikl-at patch; reinstall it: rm -rf $pkgdir && npm run setup:native"
  fi
  local installed
  installed=$(node -p "require('$pkgdir/package.json').version")
  [ "$installed" = "$tfjs_version" ] || die "$pkg is $installed; the binding patch is for $tfjs_version"
  command -v patch >/dev/null || die "the 'patch' program is needed (apt-get install patch)"
  say "patching the $pkg binding sources with $(basename "$patch_file")"
  (cd "$pkgdir" && patch -p1 --forward --batch --no-backup-if-mismatch <"$patch_file" >&2) \
    || die "$(basename "$patch_file") does not apply to $pkgdir/binding"
}

if [ "${IKL_SETUP_FORCE:-0}" != 1 ] && binding_patched; then
  say "$pkg already loads its patched native binding; nothing to do (IKL_SETUP_FORCE=1 rebuilds)."
  exit 0
fi
if [ "${IKL_SETUP_FORCE:-0}" != 1 ] && binding_loads; then
  say "$pkg loads a binding built without the ikl-at patch (version $patch_version): rebuilding it"
fi

start=$(date +%s)

# 1. The npm package, installed without its download script (the project's .npmrc skips scripts).
if [ ! -f "$pkgdir/package.json" ]; then
  say "installing $pkg@$tfjs_version without its install script"
  npm install --no-save --ignore-scripts "$pkg@$tfjs_version" >&2 || die "could not install $pkg@$tfjs_version from the npm registry"
fi

# 2. The TensorFlow wheel.
wheel=${IKL_TF_WHEEL:-}
if [ -z "$wheel" ]; then
  cache=${IKL_TF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ikl-at}
  mkdir -p "$cache"
  wheel=$(ls "$cache"/${wheel_name//-/_}-"$tf_version"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    command -v python3 >/dev/null || die "python3 is needed to fetch the $wheel_name wheel (or set IKL_TF_WHEEL=/path/to/wheel.whl)"
    say "downloading the $wheel_name==$tf_version wheel with pip into $cache (about 270 MB)"
    python3 -m pip download --no-deps --only-binary=:all: -d "$cache" "$wheel_name==$tf_version" >&2 \
      || die "pip could not fetch $wheel_name==$tf_version. Download a manylinux x86_64 wheel of it elsewhere and rerun with IKL_TF_WHEEL=/path/to/the.whl"
    wheel=$(ls "$cache"/${wheel_name//-/_}-"$tf_version"-*.whl 2>/dev/null | head -n 1 || true)
    [ -n "$wheel" ] || die "pip reported success but no $wheel_name wheel is in $cache"
  fi
fi
[ -f "$wheel" ] || die "wheel not found: $wheel"
say "using wheel $wheel"

# 3. Stage the C library and the 15 C-API headers where binding.gyp and scripts/install.js look.
deps="$pkgdir/deps"
rm -rf "$deps.tmp"
mkdir -p "$deps.tmp/lib" "$deps.tmp/include"
say "extracting libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the C-API headers into $deps"
python3 - "$wheel" "$deps.tmp" <<'PY' || die "the wheel does not contain the TensorFlow C library (is it a Linux x86_64 TensorFlow wheel?)"
import os, shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
libs = ["libtensorflow_cc.so.2", "libtensorflow_framework.so.2"]
headers = ["tensorflow/c/c_api.h", "tensorflow/c/c_api_macros.h", "tensorflow/c/eager/c_api.h",
           "tensorflow/c/tf_attrtype.h", "tensorflow/c/tf_buffer.h", "tensorflow/c/tf_datatype.h",
           "tensorflow/c/tf_status.h", "tensorflow/c/c_api_experimental.h", "tensorflow/c/tf_tensor.h", "tensorflow/c/tf_tstring.h",
           "tensorflow/core/platform/ctstring.h", "tensorflow/core/platform/ctstring_internal.h",
           "tsl/platform/ctstring.h", "tsl/platform/ctstring_internal.h", "xla/tsl/c/tsl_status.h"]
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    wanted = [("tensorflow/" + l, os.path.join(out, "lib", l)) for l in libs]
    wanted += [("tensorflow/include/" + h, os.path.join(out, "include", h)) for h in headers]
    missing = [m for m, _ in wanted if m not in names]
    if missing:
        sys.exit("missing from wheel: " + ", ".join(missing))
    for member, dest in wanted:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(member) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
# Link names the package's install script checks (…so.2.9.1) and the linker resolves (-ltensorflow).
(cd "$deps.tmp/lib" \
  && ln -sf libtensorflow_cc.so.2 libtensorflow.so \
  && ln -sf libtensorflow_cc.so.2 libtensorflow.so.2.9.1 \
  && ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so \
  && ln -sf libtensorflow_framework.so.2 libtensorflow_framework.so.2.9.1)
rm -rf "$deps" && mv "$deps.tmp" "$deps"

# 4. Patch the binding sources (idempotent), then compile the binding (node-gyp via node-pre-gyp; the package's script finds deps/lib and skips its download).
patch_binding
say "compiling the $pkg binding against TensorFlow $tf_version (about a minute)"
# --loglevel=error: npm warns that build-from-source (read by node-pre-gyp from the environment) is not one of its
# own settings, once per npm process (two lines); errors are still shown.
(cd "$root" && npm_config_build_from_source=true npm rebuild --loglevel=error --ignore-scripts=false "$pkg" >&2) \
  || die "building the $pkg binding failed (needs python3, make and a C++ compiler: apt-get install build-essential)"

binding_loads || die "the binding was built but '$pkg' still does not load; run: node -e \"require('$pkg')\""
binding_patched || die "the binding was built but does not report IKL_PATCH=$patch_version; rerun with IKL_SETUP_FORCE=1"
say "done in $(( $(date +%s) - start )) s: $pkg now uses TensorFlow $tf_version from $wheel"
