#!/usr/bin/env bash
# Makes switchyard's Lambda package, the directory deploy/template.yaml's CodeUri names:
#
#   target/lambda/switchyard/bootstrap         the release binary, renamed (it runs `lambda`)
#   target/lambda/switchyard/triggers/*.yaml   the pipeline definitions
#   target/lambda/switchyard/switchyard.yaml   only when a configuration is given
#
# Usage, from anywhere in the repository:
#
#   deploy/lambda/build.sh [TRIGGERS_DIR [SWITCHYARD_YAML]]
#
# TRIGGERS_DIR defaults to deploy/lambda/triggers (the example). Without SWITCHYARD_YAML the
# function takes its webhook receivers from the SWITCHYARD_SECRET_* variables the template
# sets. The definitions (and the configuration) pass `switchyard check` first, or nothing is
# made. Then `sam deploy --template-file deploy/template.yaml …` zips and uploads the package;
# there is no `sam build` step.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
die() {
    printf 'build.sh: %s\n' "$1" >&2
    [ -z "${2:-}" ] || printf 'hint: %s\n' "$2" >&2
    exit 1
}

triggers="${1:-$root/deploy/lambda/triggers}"
config="${2:-}"
[ -d "$triggers" ] || die "$triggers: no such directory" "name the directory of your pipeline definitions"
triggers="$(cd "$triggers" && pwd)"
if [ -n "$config" ]; then
    [ -f "$config" ] || die "$config: no such file" "name your switchyard.yaml, or leave it out"
    config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
fi

cd "$root"
cargo build --release --locked --bin switchyard
bin="${CARGO_TARGET_DIR:-$root/target}/release/switchyard"
[ -x "$bin" ] || die "$bin: cargo built no such file" "is CARGO_TARGET_DIR relative? make it absolute"

# Check what goes into the package, from an empty directory so that no stray ./switchyard.yaml
# stands in for the configuration the function will (or will not) have.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && "$bin" check --triggers "$triggers" ${config:+--config "$config"})

out="$root/target/lambda/switchyard"
rm -rf "$out"
mkdir -p "$out/triggers"
install -m 0755 "$bin" "$out/bootstrap"
# The release profile keeps line tables (most of the binary's size); the package drops them and
# keeps the symbols, as the container image does.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$out/bootstrap"
else
    echo "build.sh: no strip here (binutils); the package keeps the line tables" >&2
fi
shopt -s nullglob
definitions=("$triggers"/*.yaml "$triggers"/*.yml)
[ ${#definitions[@]} -gt 0 ] || die "$triggers has no *.yaml file" "one YAML file per pipeline"
install -m 0644 "${definitions[@]}" "$out/triggers/"
[ -z "$config" ] || install -m 0644 "$config" "$out/switchyard.yaml"

# provided.al2023 has glibc 2.34: a binary built against a newer glibc may need symbols it
# lacks and would fail at its first invocation, not here.
if command -v objdump >/dev/null 2>&1; then
    newest="$(objdump -T "$out/bootstrap" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)"
    if [ -n "$newest" ] && [ "$(printf '%s\n2.34\n' "$newest" | sort -V | tail -n 1)" != 2.34 ]; then
        die "bootstrap needs glibc $newest; provided.al2023 has 2.34" \
            "build on a system with glibc 2.34 or older (Amazon Linux 2023, Debian bullseye)"
    fi
else
    echo "build.sh: no objdump here (binutils): the glibc the binary needs is not checked" >&2
fi

# The template's Architecture parameter must match the binary: ELF e_machine, byte 18.
case "$(od -An -tx1 -j18 -N1 "$out/bootstrap" | tr -d ' \n')" in
    3e) arch=x86_64 ;;
    b7) arch=arm64 ;;
    *) die "bootstrap is not an x86_64 or arm64 Linux binary" "build it on (or for) Linux" ;;
esac

echo "build.sh: $out ($(du -sh "$out" | cut -f1), ${#definitions[@]} pipeline file(s)${config:+, switchyard.yaml})"
echo "build.sh: deploy it with Architecture=$arch:"
echo "  sam deploy --template-file deploy/template.yaml --stack-name switchyard --resolve-s3 \\"
echo "    --capabilities CAPABILITY_IAM --parameter-overrides Architecture=$arch …"
