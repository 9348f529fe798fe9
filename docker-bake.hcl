# The release images, built with `docker buildx bake` (or `make images`): the Dockerfile's
# `operator` target (no torch, no CUDA) and its `trainer` target (CUDA torch), tagged with the
# version the chart's appVersion names, each with an SBOM and a max-mode provenance
# attestation attached (both need a builder with the docker-container driver and --push).
#
#   docker buildx bake --print                       # what would be built, as JSON
#   VERSION=0.1.0 docker buildx bake --push          # build, attest and push both images
#   REGISTRY=registry.example.com/team docker buildx bake --push operator
#
# tests/unit/foundation/test_release.py holds this file to the Dockerfile's targets, the
# chart's image repositories and its appVersion.

variable "REGISTRY" {
  # The chart's default image repositories live under this prefix (values.yaml image.*).
  default = "ghcr.io/stylegan-operator"
}

variable "VERSION" {
  # Keep equal to appVersion in charts/stylegan-operator/Chart.yaml and the package version.
  default = "0.1.0"
}

group "default" {
  targets = ["operator", "trainer"]
}

target "_release" {
  context    = "."
  dockerfile = "Dockerfile"
  platforms  = ["linux/amd64"]
  attest = [
    "type=sbom",
    "type=provenance,mode=max",
  ]
  labels = {
    "org.opencontainers.image.version" = "${VERSION}"
    "org.opencontainers.image.licenses" = "Apache-2.0"
  }
}

target "operator" {
  inherits = ["_release"]
  target   = "operator"
  tags     = ["${REGISTRY}/operator:${VERSION}"]
  labels = {
    "org.opencontainers.image.title" = "stylegan-operator"
  }
}

target "trainer" {
  inherits = ["_release"]
  target   = "trainer"
  tags     = ["${REGISTRY}/trainer:${VERSION}"]
  labels = {
    "org.opencontainers.image.title" = "stylegan-trainer"
  }
}
