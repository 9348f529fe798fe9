{{/*
What the operator may do, and nothing more: operator/stylegan_operator/kube/client.py makes every
call, and tests/unit/chart checks these rules equal manifests/rbac/cluster-role.yaml.
kopf runs standalone with CRD and namespace scanning off: no peering objects, no
cluster-wide read of CRDs or namespaces. Bound cluster-wide (a ClusterRole) only when the
operator serves every namespace; otherwise as a Role in each served namespace.
*/}}
{{- define "stylegan-operator.operatorRules" -}}
# Application: the runs, watched by kopf, which also patches its annotations and
# finalizer; deleted when ttlSecondsAfterFinished runs out.
- apiGroups: [stylegan.dev]
  resources: [styleganruns]
  verbs: [get, list, watch, patch, delete]
# Application: the status the operator writes. Holding get/patch here is also what lets it
# create each run's trainer Role, which grants rank 0 the same two verbs on its own run.
- apiGroups: [stylegan.dev]
  resources: [styleganruns/status]
  verbs: [get, patch]
# Application: every child names its run as owner with blockOwnerDeletion: true, which the
# API server allows only to who may update the owner's finalizers
# (OwnerReferencesPermissionEnforcement, on in OpenShift).
- apiGroups: [stylegan.dev]
  resources: [styleganruns/finalizers]
  verbs: [update]
# Application: one Job per attempt; patched to suspend it, deleted when replaced.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# Application: pods are only read: their lifetimes are the cost, their states the lifecycle.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Application: the attempt's trainer options.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, create]
# Application: the headless Service for the rendezvous (created), and the server's
# <run>-faces of spec.serve (server-side apply: patch, or create when missing; deleted when
# serving is turned off).
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
# Application: the server of spec.serve, applied, watched (a deleted one is made again, its
# readiness reaches the status) and deleted when turned off.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
# Application: the per-run ServiceAccount, Role and RoleBinding that let the trainer's
# rank 0 patch its own run's status (operator/stylegan_operator/reconcile/children.py
# build_status_role: get/patch on styleganruns/status, resourceNames: [the run]). Listed by
# the run's label on each reconcile, so ones deleted while the run lives are made again.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, create]
# Framework: kopf posts the lifecycle Events on the runs.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}
