{{/* Labels every object carries; selectorLabels are the stable subset used by selectors. */}}
{{- define "service.selectorLabels" -}}
app.kubernetes.io/name: {{ .Values.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "service.labels" -}}
{{ include "service.selectorLabels" . }}
{{- /* ServiceMonitor jobLabel: scraped series get job="retail", which the alert rules select. */}}
app.kubernetes.io/part-of: retail
app.kubernetes.io/component: service
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "service.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end }}

{{/* Rules JSON Schema cannot express: checked here so the render fails with a clear message. */}}
{{- define "service.validate" -}}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- fail (printf "autoscaling.minReplicas (%v) must not exceed autoscaling.maxReplicas (%v)" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and .Values.secretName (hasKey .Values.env "SECRETS_DIR") -}}
{{- fail "env.SECRETS_DIR is set by the chart from secretsDir; remove it from env" -}}
{{- end -}}
{{- if and .Values.networkPolicy.database.enabled (not .Values.networkPolicy.database.cidrs) (not .Values.networkPolicy.database.namespace) -}}
{{- fail "networkPolicy.database.enabled needs database.cidrs (RDS) or database.namespace + podLabels (in-cluster)" -}}
{{- end -}}
{{- end }}
