// Validate custom resources against schemas generated from their CRDs (kubernetes-models), offline.
//   node charts/tools/validate-crs.mjs manifests.json   ->  {"checked": [...], "errors": [...], "unknown": [...]}
// Input: a JSON array of objects. Kinds without a model here (ECK, NginxProxy, TargetGroupBinding) are reported as unknown.
import { readFileSync } from "node:fs";
import { Gateway } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";

const models = new Map(
  [Gateway, HTTPRoute, ServiceMonitor, PrometheusRule, PodMonitor].map((m) => [`${m.apiVersion} ${m.kind}`, m]),
);
const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
const result = { checked: [], errors: [], unknown: [] };
for (const obj of objects) {
  const id = `${obj.apiVersion} ${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
  const Model = models.get(`${obj.apiVersion} ${obj.kind}`);
  if (!Model) {
    result.unknown.push(id);
    continue;
  }
  try {
    new Model(obj).validate();
    result.checked.push(id);
  } catch (err) {
    result.errors.push(`${id}: ${err.message}`);
  }
}
process.stdout.write(JSON.stringify(result));
