"""The VPC of a deployment with the MLflow stack, in the control stack (which deploys first):
MLflow's ALB, Fargate task and database live in it, and so do the control plane's MLflow
clients, the Lambdas and the training jobs.

Why the clients are in it: the ALB admits only ``mlflow.allowed_cidrs``, never the whole
internet, and a Lambda or a training job outside a VPC calls from whatever address AWS picks.
Inside it they leave through the NAT gateway's Elastic IP, one fixed address the ALB admits.
Gateway endpoints (free) keep S3 and DynamoDB traffic off the NAT.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct


class Network(Construct):
    """Attributes: ``vpc``, ``clients`` (the security group of the control plane's MLflow
    clients), ``egress_cidrs`` (the NAT addresses as /32), ``client_subnets``."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 log_retention: logs.RetentionDays, key: kms.IKey | None) -> None:
        super().__init__(scope, construct_id)
        # Our own Elastic IP, so the ALB's ingress can name the NAT's address.
        nat_ip = ec2.CfnEIP(self, "NatAddress", domain="vpc")
        self.vpc = ec2.Vpc(
            self, "Vpc", max_azs=2, nat_gateways=1,
            nat_gateway_provider=ec2.NatProvider.gateway(
                eip_allocation_ids=[nat_ip.attr_allocation_id]),
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(name="app",
                                        subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                ec2.SubnetConfiguration(name="db",
                                        subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)})
        self.vpc.add_flow_log("FlowLogs", destination=ec2.FlowLogDestination.to_cloud_watch_logs(
            logs.LogGroup(self, "FlowLogGroup", retention=log_retention, encryption_key=key,
                          removal_policy=RemovalPolicy.DESTROY)))
        self.egress_cidrs = [f"{nat_ip.attr_public_ip}/32"]
        self.client_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.clients = ec2.SecurityGroup(
            self, "Clients", vpc=self.vpc, allow_all_outbound=True,
            description="The control plane Lambdas and training jobs (clients of MLflow)")

    @property
    def training_vpc_config(self) -> dict[str, object]:
        """``VpcConfig`` of CreateTrainingJob: the private subnets, the clients' group."""
        return {"SecurityGroupIds": [self.clients.security_group_id],
                "Subnets": self.vpc.select_subnets(
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids}
