{{/* The release's resource name. */}}
{{- define "exokey.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "exokey.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "exokey.labels" -}}
{{ include "exokey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "exokey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "exokey.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The webhook's pods: a name of their own, so the controllers' selector never matches them. */}}
{{- define "exokey.webhookSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "exokey.webhookServiceAccountName" -}}
{{- printf "%s-webhook" (include "exokey.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Where the replicas go: on different nodes (anti-affinity) and zones (a
spread that never blocks scheduling) unless affinity or
topologySpreadConstraints replace it. Takes a dict of Values and selector
(the pods' selector labels, rendered).
*/}}
{{- define "exokey.spread" -}}
{{- if .Values.affinity }}
affinity: {{- toYaml .Values.affinity | nindent 2 }}
{{- else if .Values.spreadReplicas }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels: {{- .selector | nindent 12 }}
{{- end }}
{{- if .Values.topologySpreadConstraints }}
topologySpreadConstraints: {{- toYaml .Values.topologySpreadConstraints | nindent 2 }}
{{- else if .Values.spreadReplicas }}
topologySpreadConstraints:
- maxSkew: 1
  topologyKey: topology.kubernetes.io/zone
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels: {{- .selector | nindent 6 }}
{{- end }}
{{- end -}}
