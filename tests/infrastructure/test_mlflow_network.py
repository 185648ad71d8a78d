"""Who reaches the MLflow stack (the session's shared synth, cdk.json's settings): nothing is
open to the internet; the ALB admits ``mlflow.allowed_cidrs`` and the NAT address the
control plane's Lambdas and training jobs call from, being in the VPC's private subnets."""

from __future__ import annotations

import json

import pytest

from mlops_control import names
from tests.infrastructure.conftest import cdk_context

pytestmark = pytest.mark.infrastructure


def resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def ingress_rules(template: dict) -> list[dict]:
    rules = [dict(rule, GroupId=lid)
             for lid, group in resources(template, "AWS::EC2::SecurityGroup").items()
             for rule in group["Properties"].get("SecurityGroupIngress", [])]
    rules += [r["Properties"] for r in resources(template,
                                                 "AWS::EC2::SecurityGroupIngress").values()]
    return rules


def test_no_security_group_admits_the_whole_internet(synth):
    for stack, template in synth.templates.items():
        for rule in ingress_rules(template):
            assert rule.get("CidrIp") != "0.0.0.0/0", (stack, rule)
            assert rule.get("CidrIpv6") != "::/0", (stack, rule)


def test_the_alb_admits_the_allowed_cidrs_and_the_control_planes_nat_address_only(synth):
    template = synth.templates[names.STACK_MLFLOW]
    [alb] = resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert alb["Properties"]["Scheme"] == "internet-facing"
    [group] = [g["Fn::GetAtt"][0] for g in alb["Properties"]["SecurityGroups"]]
    rules = [(r["CidrIp"], r["FromPort"]) for r in ingress_rules(template)
             if r["GroupId"] == group]
    allowed = cdk_context()["mlops"]["mlflow"]["allowed_cidrs"]
    assert allowed and sorted(rule for rule in rules if isinstance(rule[0], str)) == sorted(
        (cidr, port) for cidr in allowed for port in (80, 443))
    # The one other rule: the NAT gateway's Elastic IP (control stack), as /32, on 443.
    [(nat_cidr, port)] = [rule for rule in rules if not isinstance(rule[0], str)]
    [nat_address] = resources(synth.templates[names.STACK_CONTROL], "AWS::EC2::EIP")
    [imported, suffix] = nat_cidr["Fn::Join"][1]
    assert port == 443 and suffix == "/32"
    assert imported["Fn::ImportValue"].startswith(
        f"{names.STACK_CONTROL}:ExportsOutputFnGetAtt{nat_address}PublicIp")


def test_the_nat_gateway_leaves_from_that_address(synth):
    template = synth.templates[names.STACK_CONTROL]
    [nat_address] = resources(template, "AWS::EC2::EIP")
    [nat] = resources(template, "AWS::EC2::NatGateway").values()
    assert nat["Properties"]["AllocationId"] == {"Fn::GetAtt": [nat_address, "AllocationId"]}


def test_every_control_plane_function_runs_in_the_private_subnets_as_an_mlflow_client(synth):
    template = synth.templates[names.STACK_CONTROL]
    [clients] = [lid for lid, g in resources(template, "AWS::EC2::SecurityGroup").items()
                 if "clients of MLflow" in g["Properties"]["GroupDescription"]]
    private = {lid for lid, s in resources(template, "AWS::EC2::Subnet").items()
               if {"Key": "aws-cdk:subnet-type", "Value": "Private"} in s["Properties"]["Tags"]}
    ours = {lid: f["Properties"] for lid, f in resources(template, "AWS::Lambda::Function").items()
            if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get(
                "Variables", {})}
    assert len(ours) > 5
    for lid, function in ours.items():
        vpc = function.get("VpcConfig")
        assert vpc, f"{lid} is outside the VPC: the ALB would not admit its calls"
        assert vpc["SecurityGroupIds"] == [{"Fn::GetAtt": [clients, "GroupId"]}]
        assert {s["Ref"] for s in vpc["SubnetIds"]} == private, lid


def test_the_vpc_reaches_s3_and_dynamodb_without_the_nat(synth):
    endpoints = resources(synth.templates[names.STACK_CONTROL], "AWS::EC2::VPCEndpoint")
    services = json.dumps([e["Properties"]["ServiceName"] for e in endpoints.values()])
    assert ".s3" in services and ".dynamodb" in services


def test_the_sagemaker_role_may_run_training_jobs_in_the_vpc(synth):
    from mlops_cdk.sagemaker_role import VPC_ACTIONS

    template = synth.templates[names.STACK_CONTROL]
    text = json.dumps([p["Properties"]["PolicyDocument"] for lid, p in resources(
        template, "AWS::IAM::Policy").items() if lid.startswith("SageMakerRole")])
    for action in VPC_ACTIONS:
        assert f'"{action}"' in text, action


def test_training_jobs_run_in_the_private_subnets_as_mlflow_clients(synth):
    template = synth.templates[names.STACK_CONTROL]
    [train] = [m for lid, m in resources(template, "AWS::StepFunctions::StateMachine").items()
               if "Train" in lid]
    definition = json.dumps(train["Properties"]["DefinitionString"])
    [clients] = [lid for lid, g in resources(template, "AWS::EC2::SecurityGroup").items()
                 if "clients of MLflow" in g["Properties"]["GroupDescription"]]
    assert "VpcConfig" in definition and clients in definition
