"""The optional MLflow server: MLflow 3 on ECS Fargate, PostgreSQL on RDS, artifacts in the
control stack's artifact bucket, behind an ALB with TLS, in the control stack's VPC
(network.py).

Who reaches it: the ALB admits ``mlflow.allowed_cidrs`` (required, never internet-wide) and
the VPC's NAT address, through which the control plane's Lambdas and training jobs call;
nothing else. MLflow checks the Host header of every request (DNS-rebinding protection), so
the task is told the names it answers to: the domain and the ALB's own DNS name.

Authentication: MLflow's own basic-auth app (admin credentials in Secrets Manager). Chosen
over ALB OIDC because every client of this server is a machine as well as a person: the
training jobs, the Lambdas and CI authenticate with MLFLOW_TRACKING_USERNAME/PASSWORD, which
MLflow's clients support natively; OIDC at the ALB would need a browser flow or a separate
token path for each of them. The webhook's encryption key is derived from a stable
Secrets Manager secret, and the server registers its webhook at start-up, pointed at the
control plane's Function URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, Duration, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops_cdk.control_stack import ARTIFACT_BUCKET_EXPORT, ControlStack
from mlops_cdk.lambda_factory import REPO, _retention
from mlops_cdk.settings import Settings
from mlops_cdk.storage import MLFLOW_PREFIX

DB_PORT = 5433
"""Not PostgreSQL's default port: one less thing a scan finds (AwsSolutions-RDS11)."""


def _ack(scope: Construct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


class MlflowStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings,
                 control: ControlStack, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        mlflow = settings.mlflow
        assert mlflow.domain_name and mlflow.certificate_arn and control.mlflow_auth
        assert control.network is not None
        removal = RemovalPolicy.RETAIN if settings.retain_data else RemovalPolicy.DESTROY
        self.vpc = control.network.vpc

        self.database = rds.DatabaseInstance(
            self, "Database",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_17_9),
            instance_type=ec2.InstanceType(mlflow.db_instance_class), vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            port=DB_PORT, database_name="mlflow",
            credentials=rds.Credentials.from_generated_secret("mlflow"),
            storage_encrypted=True, multi_az=mlflow.multi_az, allocated_storage=20,
            max_allocated_storage=100, backup_retention=Duration.days(7),
            deletion_protection=mlflow.deletion_protection, removal_policy=removal,
            cloudwatch_logs_exports=["postgresql"], auto_minor_version_upgrade=True)
        db_secret = self.database.secret
        assert db_secret is not None
        _ack(self.database, "AwsSolutions-RDS3",
             "multi-AZ is the setting mlflow.multi_az (off by default: the registry is rebuilt "
             "from backups within the hour, and a standby doubles the database cost)")
        _ack(self.database, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
             "service-role/AmazonRDSEnhancedMonitoringRole]",
             "the AWS managed role is the one RDS enhanced monitoring requires")
        _ack(self.database, "AwsSolutions-RDS6",
             "MLflow's SQLAlchemy URI authenticates with a password; IAM tokens expire every "
             "15 minutes and MLflow cannot refresh them")
        _ack(self.database.node.find_child("Secret"), "AwsSolutions-SMG4",
             "the running MLflow task holds the password from start-up; rotation would need a "
             "coordinated task restart, done by redeploying (docs/aws.md)")

        flask_secret = secretsmanager.Secret(
            self, "FlaskSecretKey", description="MLflow's Flask session secret",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True))
        webhook_key = secretsmanager.Secret(
            self, "WebhookKeySource",
            description="Source of MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (must stay stable)",
            removal_policy=removal,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True))
        for secret in (flask_secret, webhook_key):
            _ack(secret, "AwsSolutions-SMG4",
                 "rotating this key would make what MLflow encrypted with it unreadable")

        cluster = ecs.Cluster(self, "Cluster", vpc=self.vpc,
                              container_insights_v2=ecs.ContainerInsights.ENABLED)
        image = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(Path(REPO) / "mlflow_image"),
            platform=ecr_assets.Platform.LINUX_AMD64,
            build_args={"MLFLOW_VERSION": mlflow.image_version})
        alb_logs = s3.Bucket(self, "AlbLogs", encryption=s3.BucketEncryption.S3_MANAGED,
                             block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                             enforce_ssl=True, removal_policy=RemovalPolicy.DESTROY,
                             auto_delete_objects=True,
                             lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))])
        _ack(alb_logs, "AwsSolutions-S1",
             "this bucket receives the ALB's access logs; logging it again would loop")

        self.service = ecs_patterns.ApplicationLoadBalancedFargateService(
            self, "Service", cluster=cluster, cpu=1024, memory_limit_mib=2048,
            desired_count=1, public_load_balancer=True, min_healthy_percent=100,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate",
                                                             mlflow.certificate_arn),
            domain_name=None, redirect_http=True,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS, open_listener=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            task_image_options=ecs_patterns.ApplicationLoadBalancedTaskImageOptions(
                image=ecs.ContainerImage.from_docker_image_asset(image),
                container_port=5000,
                log_driver=ecs.LogDrivers.aws_logs(
                    stream_prefix="mlflow",
                    log_retention=_retention(settings.log_retention_days)),
                environment={
                    "DB_HOST": self.database.db_instance_endpoint_address,
                    "DB_PORT": str(DB_PORT), "DB_NAME": "mlflow",
                    "ARTIFACTS_DESTINATION": control.storage.mlflow_artifacts_uri,
                    "WEBHOOK_URL": control.intake.webhook_url.url,
                },
                secrets={
                    "DB_USER": ecs.Secret.from_secrets_manager(db_secret, "username"),
                    "DB_PASSWORD": ecs.Secret.from_secrets_manager(db_secret, "password"),
                    "ADMIN_USERNAME": ecs.Secret.from_secrets_manager(control.mlflow_auth,
                                                                      "username"),
                    "ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(control.mlflow_auth,
                                                                      "password"),
                    "FLASK_SECRET_KEY": ecs.Secret.from_secrets_manager(flask_secret),
                    "WEBHOOK_KEY_SOURCE": ecs.Secret.from_secrets_manager(webhook_key),
                    "WEBHOOK_SECRET": ecs.Secret.from_secrets_manager(
                        control.intake.webhook_secret),
                }))
        alb = self.service.load_balancer
        # The names MLflow's Host-header check admits (mlflow_image/entrypoint.py): without
        # them every request through the ALB but /health is a 403.
        container = self.service.task_definition.default_container
        assert container is not None
        container.add_environment(
            "MLFLOW_PUBLIC_HOSTS", f"{mlflow.domain_name},{alb.load_balancer_dns_name}")
        for cidr in mlflow.allowed_cidrs:
            peer = ec2.Peer.ipv4(cidr)
            alb.connections.allow_from(peer, ec2.Port.tcp(443), "HTTPS to MLflow")
            alb.connections.allow_from(peer, ec2.Port.tcp(80), "HTTP, redirected to HTTPS")
        # The control plane's Lambdas and training jobs: from the VPC's private subnets to
        # the internet-facing ALB, their requests leave through the NAT gateway's address.
        for cidr in control.network.egress_cidrs:
            alb.connections.allow_from(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443),
                                       "HTTPS to MLflow from the control plane (NAT address)")
        _ack(alb, "AwsSolutions::AwsSolutions-EC23",
             "cdk-nag cannot read an ingress CIDR made of the NAT address's GetAtt; it is that "
             "one Elastic IP as /32, and every other rule is an allowed_cidrs entry, which the "
             "settings refuse when internet-wide (tests/infrastructure/test_mlflow_network.py "
             "checks the template)")
        self.service.load_balancer.log_access_logs(alb_logs, "mlflow")
        self.service.target_group.configure_health_check(path="/health", healthy_http_codes="200")
        self.database.connections.allow_default_port_from(self.service.service,
                                                          "MLflow tasks to PostgreSQL")
        # Written out rather than artifacts.grant_read_write(...): a grant would edit the
        # control stack's bucket and key policies to name this stack's role, a cycle between
        # the stacks (the control stack must deploy first: it makes the Function URL).
        task_role = self.service.task_definition.task_role
        bucket_arn = Fn.import_value(ARTIFACT_BUCKET_EXPORT)
        task_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=[bucket_arn]))
        task_role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[f"{bucket_arn}/{MLFLOW_PREFIX}/*"]))
        if control.storage.key is not None:
            task_role.add_to_principal_policy(iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[control.storage.key.key_arn]))

        _ack(self.service.task_definition, "AwsSolutions-ECS2",
             "only non-secret settings (database host and port, artifact URI, webhook URL) are "
             "plain environment variables; every secret comes from Secrets Manager")
        _ack(self.service.task_definition, "AwsSolutions-IAM5[Resource::*]",
             "ecr:GetAuthorizationToken and the log-stream actions ECS adds take no narrower "
             "resource")
        _ack(self.service.task_definition,
             f"AwsSolutions-IAM5[Resource::{ARTIFACT_BUCKET_EXPORT}/mlflow/*]",
             "MLflow proxies every artifact under the mlflow/ prefix (log, download, delete)")
        self.url = f"https://{mlflow.domain_name}"
