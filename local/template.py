"""Reads template.yaml: the one source of truth for tables, secrets, routes,
environment and gateway responses.  The local API and the tests build
everything they need from here instead of keeping a second copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: _intrinsic(loader, suffix, node))


@lru_cache(maxsize=1)
def load(path: Path = TEMPLATE) -> dict[str, Any]:
    # _CfnLoader is a SafeLoader that also reads the !Ref-style tags.
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506  # nosec B506


class NoValue:
    """AWS::NoValue: the property is dropped."""


@dataclass
class Stack:
    """The template resolved for one local deployment."""

    name: str = "carekey-local"
    region: str = "us-east-1"
    account: str = "123456789012"
    overrides: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] | None = None  # another template (the HTTP API option), else template.yaml

    @property
    def template(self) -> dict[str, Any]:
        return self.source if self.source is not None else load()

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    def parameter(self, name: str) -> str:
        if name in self.overrides:
            return self.overrides[name]
        return str(self.template["Parameters"][name].get("Default", ""))

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        kind = resource["Type"]
        if kind == "AWS::SES::EmailIdentity":
            return self.resolve(resource["Properties"]["EmailIdentity"])
        if kind == "AWS::KMS::Alias":
            return str(self.resolve(resource["Properties"]["AliasName"]))
        if kind == "AWS::S3::Bucket":
            return f"{self.name}-{logical_id}".lower()  # bucket names are lower case
        if kind == "AWS::SQS::Queue":
            props = resource.get("Properties") or {}
            if props.get("QueueName"):
                return str(self.resolve(props["QueueName"]))
            # CloudFormation names a FIFO queue it names itself with the required suffix.
            return f"{self.name}-{logical_id}" + (".fifo" if self.resolve(props.get("FifoQueue")) in (True, "true") else "")
        return f"{self.name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        service = {
            "AWS::DynamoDB::Table": f"dynamodb:{self.region}:{self.account}:table/{name}",
            "AWS::SecretsManager::Secret": f"secretsmanager:{self.region}:{self.account}:secret:{name}",
            "AWS::Serverless::Function": f"lambda:{self.region}:{self.account}:function:{name}",
            "AWS::KMS::Key": f"kms:{self.region}:{self.account}:key/{name}",
            "AWS::Logs::LogGroup": f"logs:{self.region}:{self.account}:log-group:{name}",
            "AWS::SQS::Queue": f"sqs:{self.region}:{self.account}:{name}",
            "AWS::S3::Bucket": f"s3:::{name}",
            "AWS::SSM::Parameter": f"ssm:{self.region}:{self.account}:parameter/{name}",
        }.get(kind, f"local:{self.region}:{self.account}:{name}")
        return f"arn:aws:{service}"

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value: Any) -> Any:
        """Evaluate the intrinsic functions this template uses."""
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NoValue]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: r for k, v in value.items() if (r := self.resolve(v)) is not NoValue}
        (key, arg), = value.items()
        if key == "Ref":
            return self._ref(arg)
        if key == "Fn::GetAtt":
            logical, attribute = arg
            if attribute == "Arn":
                return self.arn(logical)
            if attribute == "QueueUrl":
                return self.queue_url(logical)
            return self.physical_name(logical)
        if key == "Fn::Sub":
            text = arg if isinstance(arg, str) else arg[0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1))), text)
        if key == "Fn::If":
            name, yes, no = arg
            return self.resolve(yes if self.condition(name) else no)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        return {key: self.resolve(arg)}

    def _sub(self, name: str) -> Any:
        if "." in name:
            logical, attribute = name.split(".", 1)
            return self.resolve({"Fn::GetAtt": [logical, attribute]})
        return self._ref(name)

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return NoValue
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.parameter(name)
        kind = self.resources[name]["Type"]
        if kind == "AWS::SecretsManager::Secret":
            return self.physical_name(name)  # the local secret's name stands in for its ARN
        if kind == "AWS::SQS::Queue":
            return self.queue_url(name)
        return self.physical_name(name)

    def queue_url(self, logical_id: str) -> str:
        """A queue's URL (its Ref).  The emulator finds a queue by the URL's last
        segment, so this form works against moto whatever its endpoint."""
        name = self.physical_name(logical_id)
        if name.startswith("https://"):
            return name  # a deployed stack's physical id of a queue is its URL
        return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"

    # ---- views the local API and the tests need ---------------------------------------

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def tables(self) -> dict[str, dict[str, Any]]:
        """CreateTable arguments for every table, keyed by logical id."""
        out = {}
        for logical, res in self.of_type("AWS::DynamoDB::Table").items():
            props = self.resolve(res["Properties"])
            spec: dict[str, Any] = {
                "TableName": self.physical_name(logical),
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                spec["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            out[logical] = {"create": spec, "ttl": props.get("TimeToLiveSpecification")}
        return out

    def function_environment(self, logical_id: str) -> dict[str, str]:
        glob = self.template.get("Globals", {}).get("Function", {})
        env = dict(self.resolve(glob.get("Environment", {}).get("Variables", {})))
        own = self.resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        env.update(self.resolve(own))
        return {k: str(v) for k, v in env.items()}

    def service_environment(self) -> dict[str, str]:
        """Every function's environment in one (the local API runs them in one process)."""
        env: dict[str, str] = {}
        for logical in self.of_type("AWS::Serverless::Function"):
            for key, value in self.function_environment(logical).items():
                env.setdefault(key, value)
        return env

    def handler_of(self, logical_id: str) -> tuple[Path, str]:
        props = self.resources[logical_id]["Properties"]
        glob = self.template.get("Globals", {}).get("Function", {})
        handler = props.get("Handler", glob.get("Handler", "app.lambda_handler"))
        return ROOT / props["CodeUri"], handler

    def routes(self) -> list["Route"]:
        apis = self.of_type("AWS::Serverless::Api")
        out = []
        for logical, res in self.of_type("AWS::Serverless::Function").items():
            for event in (res["Properties"].get("Events") or {}).values():
                if event["Type"] == "HttpApi":  # the HTTP API option: no gateway authorizer, but IAM authorization
                    p = event["Properties"]
                    iam = (p.get("Auth") or {}).get("Authorizer") == "AWS_IAM"
                    out.append(Route(p["Path"], p["Method"].upper(), logical, None, iam))
                    continue
                if event["Type"] != "Api":
                    continue
                p = event["Properties"]
                authorizer = (p.get("Auth") or {}).get("Authorizer")
                api_id = p["RestApiId"]["Ref"]
                authorizer_fn = None
                if authorizer == "AWS_IAM":  # API Gateway checks the SigV4 signature itself
                    out.append(Route(p["Path"], p["Method"].upper(), logical, None, True))
                    continue
                if authorizer and authorizer != "NONE":
                    auth_cfg = apis[api_id]["Properties"]["Auth"]["Authorizers"][authorizer]
                    arn = auth_cfg["FunctionArn"]  # !GetAtt Fn.Arn, or !Ref Fn.Alias (the published alias)
                    authorizer_fn = arn["Fn::GetAtt"][0] if "Fn::GetAtt" in arn else arn["Ref"].split(".")[0]
                out.append(Route(p["Path"], p["Method"].upper(), logical, authorizer_fn))
        return out

    def gateway_responses(self) -> dict[str, dict[str, Any]]:
        api = next(iter(self.of_type("AWS::Serverless::Api").values()), None)
        if api is None:  # an HTTP API has no gateway responses
            return {}
        return self.resolve(api["Properties"].get("GatewayResponses", {}))

    def stage(self) -> str:
        api = next(iter({**self.of_type("AWS::Serverless::Api"), **self.of_type("AWS::Serverless::HttpApi")}.values()))
        return str(self.resolve(api["Properties"]["StageName"]))


@dataclass(frozen=True)
class Route:
    path: str
    method: str
    function: str
    authorizer: str | None
    iam: bool = False  # AWS_IAM authorization: SigV4-signed by an allowed IAM principal
