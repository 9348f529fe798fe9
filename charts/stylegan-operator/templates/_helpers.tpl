{{/*
Names, labels and images shared by every template of the chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "stylegan-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: fullnameOverride, else the release name (plus the chart name when
the release name does not already contain it). 63 characters at most (a DNS label); the
longest suffix the chart adds ("-run-view") is kept within that by truncating to 54.
*/}}
{{- define "stylegan-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart-version, as the helm.sh/chart label wants it. */}}
{{- define "stylegan-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels every object of the release carries. */}}
{{- define "stylegan-operator.labels" -}}
helm.sh/chart: {{ include "stylegan-operator.chart" . }}
{{ include "stylegan-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stylegan-operator
{{- end }}

{{/* The labels that select the operator's pod (immutable once installed). */}}
{{- define "stylegan-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stylegan-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "stylegan-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stylegan-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: give the name of an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "stylegan-operator.imageRef" -}}
{{- $image := index . 0 }}
{{- $appVersion := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $appVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "stylegan-operator.image" -}}
{{- include "stylegan-operator.imageRef" (list .Values.image .Chart.AppVersion) }}
{{- end }}

{{- define "stylegan-operator.trainerImage" -}}
{{- include "stylegan-operator.imageRef" (list .Values.trainerImage .Chart.AppVersion) }}
{{- end }}

{{/* The price catalog file the operator reads (cost.PriceCatalog.from_dict). */}}
{{- define "stylegan-operator.pricesYaml" -}}
{{- toYaml .Values.cost }}
{{- end }}

{{/* Where the price catalog is mounted in the operator's container. */}}
{{- define "stylegan-operator.pricesDir" -}}
/etc/stylegan-operator
{{- end }}

{{/*
Fail when a monitoring object is asked for but the cluster lacks the Prometheus Operator
CRDs: better a clear message at install than "no matches for kind ServiceMonitor".
*/}}
{{- define "stylegan-operator.requirePrometheusOperator" -}}
{{- if not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}
{{- fail "monitoring.serviceMonitor/podMonitor/prometheusRule need the Prometheus Operator CRDs (API monitoring.coreos.com/v1), which this cluster does not serve: install the Prometheus Operator (or kube-prometheus-stack) first, or leave monitoring.*.enabled false and scrape the metrics Service yourself. With `helm template`, pass --api-versions monitoring.coreos.com/v1." }}
{{- end }}
{{- end }}
