"""The HTTP API deployment option: template-httpapi.yaml, made from template.yaml.

`make deploy API=http` (or `python -m local.http_api` then `sam build -t
template-httpapi.yaml`) deploys the same functions behind an API Gateway HTTP
API ($1.00 a million requests against the REST API's $3.50) instead of the
REST API.  template.yaml stays the one source of truth: this module rewrites
a copy of it, so every route, table and policy is the same, except:

- every `Type: Api` event becomes `Type: HttpApi` on one HTTP API, with the
  REST proxy event format (`PayloadFormatVersion: "1.0"`), so the handlers
  read the same events;
- protected routes have no gateway authorizer: the functions check the bearer
  token themselves (`AUTHORIZE_IN_FUNCTION=true`, the same check the REST
  API's authorizer makes, with the authorizer's permissions added to them), so
  every 401 comes from the service with its documented body and
  `WWW-Authenticate`, and a protected request is one Lambda invocation, not two;
- the operators' routes (/admin/*) keep AWS_IAM authorization, which HTTP APIs
  also have (`EnableIamAuthorizer`): SigV4 is checked by API Gateway;
- what an HTTP API cannot have is left out: the WAF web ACL association (put
  CloudFront with AWS WAF in front instead), gateway responses (a path no
  route serves answers the HTTP API's own `404 {"message": "Not Found"}`),
  and the REST stage's method settings (the HTTP API's default route
  throttling takes the same limits).

The file is generated, never edited and not committed (.gitignore); the tests
generate it and check it with cfn-lint, and run the protected flows with the
functions authorizing themselves.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from local.template import ROOT, load

OUT = ROOT / "template-httpapi.yaml"
REST_API_TYPE = "AWS::Serverless::Api"
# REST-only resources: nothing else may refer to them once they are gone.
REST_ONLY_TYPES = {REST_API_TYPE, "AWS::WAFv2::WebACLAssociation"}
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "time": "$context.requestTime",
        "method": "$context.httpMethod",
        "path": "$context.routeKey",
        "status": "$context.status",
        "latencyMs": "$context.responseLatency",
        "integrationError": "$context.integrationErrorMessage",
    },
    separators=(",", ":"),
)


def _references(value: Any, names: set[str]) -> bool:
    """Whether a template value mentions any of `names` (Ref, GetAtt, Sub, DependsOn)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str) and inner.split(".")[0] in names:
                return True
            if key == "Fn::GetAtt" and isinstance(inner, list) and inner and inner[0] in names:
                return True
            if key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                if any(f"${{{n}}}" in text or f"${{{n}." in text for n in names):
                    return True
            if _references(inner, names):
                return True
        return False
    if isinstance(value, list):
        return any(_references(v, names) for v in value)
    if isinstance(value, str):
        return value in names
    return False


def _rest_api_of(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    apis = [(k, v) for k, v in template["Resources"].items() if v["Type"] == REST_API_TYPE]
    if len(apis) != 1:
        raise ValueError(f"expected one REST API in template.yaml, found {len(apis)}")
    return apis[0]


def http_api_template(source: dict[str, Any] | None = None) -> dict[str, Any]:
    template = copy.deepcopy(source if source is not None else load())
    resources: dict[str, Any] = template["Resources"]
    rest_id, rest = _rest_api_of(template)
    rest_props = rest["Properties"]
    authorizers = rest_props.get("Auth", {}).get("Authorizers", {})
    authorizer_fns = {
        (arn.get("Fn::GetAtt") or [arn.get("Ref", "").split(".")[0]])[0]: name
        for name, cfg in authorizers.items()
        for arn in [cfg["FunctionArn"]]
    }
    authorizer_policies: list[Any] = []
    for fn in authorizer_fns:
        authorizer_policies += resources[fn]["Properties"].get("Policies", [])

    gone = {k for k, v in resources.items() if v["Type"] in REST_ONLY_TYPES}
    gone |= {f"{rest_id}Stage", f"{rest_id}Deployment"}
    for logical in sorted(k for k in resources if resources[k]["Type"] in REST_ONLY_TYPES):
        del resources[logical]

    api_id = "AuthHttpApi"
    http_props: dict[str, Any] = {
        "StageName": rest_props.get("StageName"),
        "FailOnWarnings": True,
        "AccessLogSettings": {
            "DestinationArn": rest_props["AccessLogSetting"]["DestinationArn"],
            "Format": ACCESS_LOG_FORMAT,
        },
        "DefaultRouteSettings": {"ThrottlingBurstLimit": 500, "ThrottlingRateLimit": 200, "DetailedMetricsEnabled": True},
    }
    for setting in rest_props.get("MethodSettings", []):
        if setting.get("ResourcePath") == "/*" and setting.get("HttpMethod") == "*":
            http_props["DefaultRouteSettings"]["ThrottlingBurstLimit"] = setting.get("ThrottlingBurstLimit", 500)
            http_props["DefaultRouteSettings"]["ThrottlingRateLimit"] = setting.get("ThrottlingRateLimit", 200)
    if "Domain" in rest_props:
        domain = copy.deepcopy(rest_props["Domain"])
        # Fn::If [cond, {DomainName, CertificateArn, EndpointConfiguration, SecurityPolicy}, NoValue]
        if "Fn::If" in domain:
            cond, yes, no = domain["Fn::If"]
            yes = {k: v for k, v in yes.items() if k in ("DomainName", "CertificateArn", "EndpointConfiguration")}
            domain = {"Fn::If": [cond, yes, no]}
        http_props["Domain"] = domain
    resources[api_id] = {"Type": "AWS::Serverless::HttpApi", "Properties": http_props}

    for res in resources.values():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        protected = False
        for event in (props.get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            p = event["Properties"]
            auth = (p.get("Auth") or {}).get("Authorizer")
            event["Type"] = "HttpApi"
            event["Properties"] = {"ApiId": {"Ref": api_id}, "Path": p["Path"], "Method": p["Method"], "PayloadFormatVersion": "1.0"}
            if auth == "AWS_IAM":  # the operators' routes: API Gateway checks SigV4 on an HTTP API too
                event["Properties"]["Auth"] = {"Authorizer": "AWS_IAM"}
                http_props["Auth"] = {"EnableIamAuthorizer": True}
            elif auth and auth != "NONE":
                protected = True
        if protected:
            policies = props.setdefault("Policies", [])
            for policy in authorizer_policies:
                if policy not in policies:
                    policies.append(copy.deepcopy(policy))

    variables = template["Globals"]["Function"].setdefault("Environment", {}).setdefault("Variables", {})
    variables["AUTHORIZE_IN_FUNCTION"] = "true"

    # Outputs and anything else that named the REST API now name the HTTP API.
    for section in ("Resources", "Outputs"):
        for key, value in list((template.get(section) or {}).items()):
            if key == api_id:
                continue
            template[section][key] = _renamed(value, rest_id, api_id)
    leftovers = [k for k, v in {**resources, **(template.get("Outputs") or {})}.items() if _references(v, gone)]
    for key in leftovers:
        resources.pop(key, None)
        (template.get("Outputs") or {}).pop(key, None)
    # Conditions that only what was left out used (the gateway responses' CORS headers) go with it.
    conditions = template.get("Conditions") or {}
    for name in list(conditions):
        rest = json.dumps({**{k: v for k, v in template.items() if k != "Conditions"}, "c": {k: v for k, v in conditions.items() if k != name}})
        if f'"{name}"' not in rest:
            del conditions[name]
    template["Description"] = str(template.get("Description", "")) + " (HTTP API option, generated from template.yaml by local/http_api.py)"
    return template


def _renamed(value: Any, old: str, new: str) -> Any:
    """Swap references to the REST API for the HTTP API; stage ARNs differ, so a
    `/restapis/` ARN is left for the leftover check to drop."""
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            if key == "Ref" and inner == old:
                out[key] = new
            elif key == "Fn::Sub" and isinstance(inner, str) and "/restapis/" not in inner:
                out[key] = inner.replace(f"${{{old}}}", f"${{{new}}}")
            else:
                out[key] = _renamed(inner, old, new)
        return out
    if isinstance(value, list):
        return [_renamed(v, old, new) for v in value]
    return value


def write(path: Path = OUT) -> Path:
    body = yaml.safe_dump(http_api_template(), sort_keys=False, width=200)
    path.write_text("# Generated by local/http_api.py from template.yaml: do not edit.\n" + body)
    return path


if __name__ == "__main__":
    print(f"wrote {write().relative_to(ROOT)}")
    sys.exit(0)
