"""The control plane stack: storage, the shared image, the SageMaker role, the state
machines and the event intake, wired with ``grant_*`` calls."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.event_intake import EventIntake
from mlops_cdk.lambda_factory import LambdaFactory, _retention
from mlops_cdk.monitoring import Monitoring
from mlops_cdk.network import Network
from mlops_cdk.notifications import Notifications
from mlops_cdk.sagemaker_role import SageMakerRole
from mlops_cdk.settings import Settings
from mlops_cdk.shared_image import SharedImage
from mlops_cdk.storage import CAPTURE_PREFIX, Storage
from mlops_cdk.workflows import Workflows
from mlops_control import names
from mlops_control.backends.sagemaker import AlarmConfig, SageMakerConfig, StageConfig

ARTIFACT_BUCKET_EXPORT = "MlopsControl-ArtifactBucketArn"
"""Named so the MLflow stack's policy (and its cdk-nag acknowledgement) can spell it."""


class ControlStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings,
                 **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.storage = Storage(self, "Storage", use_kms=settings.encryption == "kms",
                               retain=settings.retain_data)
        key = self.storage.key
        self.image = SharedImage(self, "SharedImage", code_revision=settings.code_revision)
        self.sagemaker = SageMakerRole(self, "SageMaker", projects=settings.projects)
        role = self.sagemaker.role
        # With the MLflow stack: its VPC, which the Lambdas and training jobs join to reach
        # an ALB that admits only allowed_cidrs and the NAT's address (network.py).
        self.network: Network | None = None
        if settings.mlflow.deploy:
            self.network = Network(self, "Network", key=key,
                                   log_retention=_retention(settings.log_retention_days))
            self.sagemaker.allow_vpc()
        self.notifications = Notifications(self, "Notifications", key=key,
                                           emails=settings.notification_emails)

        # MLflow basic-auth credentials: made here for the MLflow stack (which depends on this
        # one), or an existing server's secret looked up by name.
        self.mlflow_auth: secretsmanager.ISecret | None = None
        if settings.mlflow.deploy:
            # The AWS managed key, not ours: the MLflow stack reads this secret, and a grant on
            # our key would make the two stacks depend on each other.
            self.mlflow_auth = secretsmanager.Secret(
                self, "MlflowAdmin",
                description="MLflow basic-auth admin credentials (control plane and CI)",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    secret_string_template='{"username": "admin"}',
                    generate_string_key="password", exclude_punctuation=True,
                    password_length=32))
            from aws_cdk import Acknowledgment, Validations

            Validations.of(self.mlflow_auth).acknowledge(Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="MLflow keeps the admin password in its own auth database; a rotation "
                       "must change both together (procedure in docs/aws.md)"))
        elif settings.mlflow.auth_secret_name:
            self.mlflow_auth = secretsmanager.Secret.from_secret_name_v2(
                self, "MlflowAuth", settings.mlflow.auth_secret_name)

        artifacts_destination = (self.storage.mlflow_artifacts_uri if settings.mlflow.deploy
                                 else settings.mlflow.artifacts_destination)
        registry_env = {names.ENV_TRACKING_URI: settings.mlflow.url}
        if self.mlflow_auth is not None:
            registry_env[names.ENV_MLFLOW_AUTH_SECRET_ARN] = self.mlflow_auth.secret_arn
        sm_config = SageMakerConfig(
            image_uri=self.image.image_uri, role_arn=role.role_arn,
            capture_uri=self.storage.capture_uri, region=self.region,
            stages={k: StageConfig(**v.model_dump()) for k, v in settings.stages.items()},
            alarms=AlarmConfig(**settings.alarms.model_dump()),
            artifacts_destination=artifacts_destination, capture_percent=settings.capture_percent,
            kms_key_arn=key.key_arn if key else None)

        factory = LambdaFactory(self, log_retention_days=settings.log_retention_days, key=key,
                                network=self.network)
        training_env = {**registry_env, names.ENV_CODE_REVISION: settings.code_revision}
        self.workflows = Workflows(
            self, "Workflows", factory=factory,
            glue_environment={**registry_env, **sm_config.to_env()},
            projects=settings.projects, topic=self.notifications.topic,
            sagemaker_role=role, image_uri=self.image.image_uri,
            training_output_uri=self.storage.training_output_uri,
            training_instance_type=settings.training.instance_type,
            training_volume_gb=settings.training.volume_gb,
            training_max_runtime_s=settings.training.max_runtime_s,
            training_environment=training_env, key=key,
            log_retention=_retention(settings.log_retention_days), sagemaker_config=sm_config,
            training_vpc_config=(self.network.training_vpc_config if self.network else None))
        self.intake = EventIntake(
            self, "EventIntake", factory=factory, registry_environment=registry_env,
            projects=settings.projects, stages=list(settings.stages),
            data_bucket=self.storage.data_bucket, data_prefix=settings.data_prefix_clean,
            train=self.workflows.train, deploy=self.workflows.deploy,
            retire=self.workflows.retire, reconcile_minutes=settings.reconcile_minutes,
            reserved_concurrency=settings.webhook_reserved_concurrency, key=key)

        self.monitoring = Monitoring(
            self, "Monitoring", factory=factory, registry_environment=registry_env,
            projects=settings.projects, stages=list(settings.stages),
            artifact_bucket=self.storage.artifact_bucket, capture_prefix=CAPTURE_PREFIX,
            topic=self.notifications.topic, key=key, mlflow_auth=self.mlflow_auth)

        # --- grants: who may touch what -------------------------------------------------
        self.storage.data_bucket.grant_read(role)
        self.storage.artifact_bucket.grant_read_write(role)
        self.image.grant_pull(role)
        location = settings.mlflow.artifact_location
        if location is not None:  # an existing MLflow's artifact store
            self.sagemaker.grant_artifacts(
                *location, settings.mlflow.artifact_kms_key_arn,
                # No proxy in between: training jobs upload their models to the bucket.
                write=settings.mlflow.artifact_bucket is not None)
        self._grant_glue_sagemaker()
        self.notifications.topic.grant_publish(self.workflows.retire)
        self.notifications.topic.grant_publish(self.workflows.train)
        if self.mlflow_auth is not None:
            for fn in [*self.workflows.glue.values(), self.intake.webhook,
                       self.intake.reconciler]:
                self.mlflow_auth.grant_read(fn)
            self.mlflow_auth.grant_read(role)

        self._acknowledge()
        CfnOutput(self, "ArtifactBucketArn", value=self.storage.artifact_bucket.bucket_arn,
                  export_name=ARTIFACT_BUCKET_EXPORT)

        outputs = {
            names.OUTPUT_WEBHOOK_URL: self.intake.webhook_url.url,
            names.OUTPUT_WEBHOOK_SECRET: self.intake.webhook_secret.secret_arn,
            names.OUTPUT_DATA_BUCKET: self.storage.data_bucket.bucket_name,
            names.OUTPUT_ARTIFACT_BUCKET: self.storage.artifact_bucket.bucket_name,
            names.OUTPUT_DEPLOY_STATE_MACHINE: self.workflows.deploy.state_machine_arn,
            names.OUTPUT_RETIRE_STATE_MACHINE: self.workflows.retire.state_machine_arn,
            names.OUTPUT_TRAIN_STATE_MACHINE: self.workflows.train.state_machine_arn,
            names.OUTPUT_IMAGE_URI: self.image.image_uri,
            names.OUTPUT_SAGEMAKER_ROLE: role.role_arn,
            names.OUTPUT_NOTIFY_TOPIC: self.notifications.topic.topic_arn,
        }
        # What the remote CLI (`mlops remote ...`) needs to find everything from the stack alone.
        outputs[names.OUTPUT_TRACKING_URI] = settings.mlflow.url
        outputs[names.OUTPUT_DATA_PREFIX] = settings.data_prefix_clean
        if artifacts_destination:
            outputs[names.OUTPUT_ARTIFACTS_DESTINATION] = artifacts_destination
        if self.mlflow_auth is not None:
            outputs[names.OUTPUT_MLFLOW_AUTH_SECRET] = self.mlflow_auth.secret_arn
        for output_id, value in outputs.items():
            CfnOutput(self, output_id, value=value)

    def _acknowledge(self) -> None:
        role = self.sagemaker.role
        nag.actions(role, nag.S3_GRANT_ACTIONS + nag.KMS_GRANT_ACTIONS,
                    "grant_read/grant_read_write on our buckets: training reads data, writes "
                    "model output; endpoints read model data and write captured requests")
        nag.wildcard(role, f"{nag.attr(self.storage.artifact_bucket)}/*",
                     "model data, training output and data capture live under many prefixes")
        nag.wildcard(role, f"{nag.attr(self.storage.data_bucket)}/*",
                     "training reads any project's data prefix")
        for machine in (self.workflows.deploy, self.workflows.retire, self.workflows.train):
            nag.actions(machine, ["kms:GenerateDataKey*"],
                        "topic.grant_publish on our KMS-encrypted SNS topic (one key)")
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                nag.ack(child, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:"
                        "policy/service-role/AWSLambdaBasicExecutionRole]",
                        "CDK's own handler that turns on the data bucket's EventBridge "
                        "notifications; the managed policy only lets it write its logs")

    def _grant_glue_sagemaker(self) -> None:
        from aws_cdk import aws_iam as iam

        glue = self.workflows.glue
        scoped = {kind: [self.format_arn(service="sagemaker", resource=kind,
                                         resource_name=f"{p}-*")
                         for p in self.settings.projects]
                  for kind in ("endpoint", "endpoint-config", "model")}
        glue["resolve"].add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint"], resources=scoped["endpoint"]))
        finish = glue["retire_finish"]
        finish.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:ListEndpointConfigs"], resources=["*"]))
        # Whether another stage of the project still serves (its dashboards then stay).
        glue["retire_plan"].add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:ListEndpoints"], resources=["*"]))
        # Both delete candidate endpoints (<endpoint>--<token>) a stopped deployment left.
        for fn in (glue["resolve"], finish):
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:ListEndpoints"], resources=["*"]))
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:DeleteEndpoint"], resources=scoped["endpoint"]))
        finish.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:ListTags", "sagemaker:DeleteEndpointConfig",
                     "sagemaker:DeleteModel"],
            resources=scoped["endpoint-config"] + scoped["model"]))
        for fn in (glue["resolve"], finish):
            for kind in scoped:
                for project in self.settings.projects:
                    nag.wildcard(fn, nag.arn(self, "sagemaker", f"{kind}/{project}-*"),
                                 "SageMaker resources are named <project>-<stage>[-v<n>-<id>];"
                                 " the project prefix is the narrowest stable scope")
