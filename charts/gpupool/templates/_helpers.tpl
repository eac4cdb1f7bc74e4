{{/* Names, labels and the image reference shared by every template. */}}

{{- define "gpupool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's object names. A release named like the chart ("gpupool") gets plain names.
*/}}
{{- define "gpupool.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpupool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; the operator's pods select on gpupool.selectorLabels only. */}}
{{- define "gpupool.labels" -}}
helm.sh/chart: {{ include "gpupool.chart" . }}
{{ include "gpupool.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpupool
{{- end }}

{{- define "gpupool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpupool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "gpupool.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gpupool.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The metrics Service's name, which is also Prometheus' `job` label when a ServiceMonitor scrapes it. */}}
{{- define "gpupool.metricsServiceName" -}}
{{- printf "%s-metrics" (include "gpupool.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* repository[:tag][@digest]; the tag defaults to the chart's appVersion. */}}
{{- define "gpupool.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The namespace of the dashboard ConfigMap (Grafana's sidecar may watch only one). */}}
{{- define "gpupool.dashboardNamespace" -}}
{{- default .Release.Namespace .Values.dashboard.namespace }}
{{- end }}

{{/*
The operator pod's affinity: .Values.affinity, plus, with more than one replica, a preference for
a node without another replica of this release, so that one node going down leaves a standby.
*/}}
{{- define "gpupool.affinity" -}}
{{- $affinity := deepCopy (.Values.affinity | default dict) }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- $anti := get $affinity "podAntiAffinity" | default dict }}
{{- $preferred := get $anti "preferredDuringSchedulingIgnoredDuringExecution" | default list }}
{{- $selector := dict "matchLabels" (include "gpupool.selectorLabels" . | fromYaml) }}
{{- $term := dict "weight" 100 "podAffinityTerm" (dict "topologyKey" "kubernetes.io/hostname" "labelSelector" $selector) }}
{{- $_ := set $anti "preferredDuringSchedulingIgnoredDuringExecution" (append $preferred $term) }}
{{- $_ := set $affinity "podAntiAffinity" $anti }}
{{- end }}
{{- toYaml $affinity }}
{{- end }}
