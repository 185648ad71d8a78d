"""The three state machines (train, deploy, retire) and their glue Lambdas.

SageMaker, CloudWatch and Application Auto Scaling are called through ``aws-sdk`` service
integrations with Wait/Describe/Choice loops, never ``.sync``, so the synthesized
definitions run end to end in moto in the tests. The deploy and retire tasks send the requests
the glue steps return (``resolve``, ``retire_plan``), which build them with
``mlops_control.backends.sagemaker``: one definition of every request shape, shared with the
CLI's direct SageMaker backend. Each Task names the request's fields in ``Parameters``
(``"ModelName.$": "$.deploy.create_model.ModelName"``); the field lists come from the same
builders (``deployment_request_fields``), so they cannot drift.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.lambda_factory import FunctionSpec, LambdaFactory
from mlops_control.backends import sagemaker as sm

ENDPOINT_POLL_S = 30
TRAINING_POLL_S = 60
DISCARD = sfn.JsonPath.DISCARD
TASK_FAILED = ["States.ALL"]
LOCK_TABLE_ENV = "MLOPS_LOCK_TABLE"
"""As ``lambdas.common.env.LOCK_TABLE``: the Lambdas' name for the lock table."""
ENDED_STATUSES = ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]

GLUE = {
    "resolve": FunctionSpec("deploy-resolve", "lambdas.deploy_steps.resolve",
                            "Deploy: check the version, mark it deploying, build the requests"),
    # MLflow's read of the slice plus InvokeEndpoint's own 60 s limit.
    "check_smoke": FunctionSpec("deploy-check-smoke", "lambdas.deploy_steps.check_smoke",
                                "Deploy: send the test slice to the endpoint, judge the answer",
                                timeout_s=120),
    "put_dashboards": FunctionSpec("deploy-dashboards", "lambdas.deploy_steps.put_dashboards",
                                   "Deploy: build and put the project's dashboards"),
    "finish": FunctionSpec("deploy-finish", "lambdas.deploy_steps.finish",
                           "Deploy: write the outcome into the registry's tags"),
    "retire_plan": FunctionSpec("retire-plan", "lambdas.deploy_steps.retire_plan",
                                "Retire: the requests that remove an endpoint"),
    "retire_finish": FunctionSpec("retire-finish", "lambdas.deploy_steps.retire_finish",
                                  "Retire: delete configs and models, write retired tags"),
    "execution_ended": FunctionSpec(
        "execution-ended", "lambdas.deploy_steps.execution_ended",
        "Deploy/retire ended: release a lock the execution left, record and notify"),
}
LOCK = FunctionSpec("endpoint-lock", "lambdas.deploy_steps.acquire_lock",
                    "Deploy/retire: take the endpoint's lock (DynamoDB) before anything else")


class Workflows(Construct):
    """Attributes: ``train``, ``deploy``, ``retire`` (state machines), ``glue`` (functions)."""

    def __init__(self, scope: Construct, construct_id: str, *, factory: LambdaFactory,
                 glue_environment: dict[str, str], projects: Sequence[str],
                 topic: sns.ITopic, sagemaker_role: iam.IRole, image_uri: str,
                 training_output_uri: str, training_instance_type: str,
                 training_volume_gb: int, training_max_runtime_s: int,
                 training_environment: dict[str, str], key: kms.IKey | None,
                 log_retention: logs.RetentionDays,
                 sagemaker_config: sm.SageMakerConfig,
                 training_vpc_config: dict[str, object] | None = None) -> None:
        super().__init__(scope, construct_id)
        self._projects = list(projects)
        # The fields of every request the glue steps return, from the request builders.
        self._fields = {"deploy": sm.deployment_request_fields(sagemaker_config),
                        "plan": sm.retire_request_fields()}
        self._key = key
        # One lock per endpoint (see lambdas/common/lock.py): items live for one execution.
        self.locks = dynamodb.Table(
            self, "EndpointLocks", partition_key=dynamodb.Attribute(
                name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=(dynamodb.TableEncryption.CUSTOMER_MANAGED if key is not None
                        else dynamodb.TableEncryption.AWS_MANAGED),
            encryption_key=key, time_to_live_attribute="expires_at",
            removal_policy=RemovalPolicy.DESTROY)
        lock_env = {LOCK_TABLE_ENV: self.locks.table_name}
        self.glue: dict[str, lambda_.Function] = {
            name: factory.function(spec, environment={
                **glue_environment,
                **({**lock_env, "MLOPS_NOTIFY_TOPIC_ARN": topic.topic_arn}
                   if name == "execution_ended" else {})})
            for name, spec in GLUE.items()}
        # The lock step needs DynamoDB only: no MLflow settings, no secret.
        self.lock = factory.function(LOCK, environment=lock_env)
        self._steps = {**self.glue, "acquire_lock": self.lock}
        self._log_retention = log_retention
        self.topic = topic

        self.deploy = self._machine("Deploy", self._deploy_definition(), Duration.hours(3))
        self.retire = self._machine("Retire", self._retire_definition(), Duration.hours(1))
        self.train = self._machine("Train", self._train_definition(
            sagemaker_role=sagemaker_role, image_uri=image_uri,
            output_uri=training_output_uri, instance_type=training_instance_type,
            volume_gb=training_volume_gb, max_runtime_s=training_max_runtime_s,
            environment=training_environment, vpc_config=training_vpc_config),
            Duration.hours(25))
        for machine in (self.deploy, self.train):
            sagemaker_role.grant_pass_role(machine)
        # SageMaker authorises tags sent with a Create* call as sagemaker:AddTags on the new
        # resource; the aws-sdk tasks' own grants name only the Create* actions.
        self.deploy.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:AddTags"],
            resources=[*self._arns("endpoint", "{project}-*"),
                       *self._arns("endpoint-config", "{project}-*"),
                       *self._arns("model", "{project}-*")]))
        self.train.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:AddTags"], resources=self._arns("training-job", "{project}-*")))
        topic.grant_publish(self.deploy)
        self._grant_locks(topic)
        self._acknowledge()

    def _grant_locks(self, topic: sns.ITopic) -> None:
        ended = self.glue["execution_ended"]
        self.locks.grant(self.lock, "dynamodb:PutItem")
        for releaser in (ended, self.deploy, self.retire):
            self.locks.grant(releaser, "dynamodb:DeleteItem")
        if self._key is not None:
            # Table.grant adds no key permissions, and DynamoDB refuses a caller who may not
            # use the table's customer managed key ("KMS key access denied").
            for user in (self.lock, ended, self.deploy, self.retire):
                self._key.grant_encrypt_decrypt(user)
        topic.grant_publish(ended)
        # The smoke step sends the test slice itself (only a reference is in the state).
        self.glue["check_smoke"].add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:InvokeEndpoint"], resources=self._arns("endpoint", "{project}-*")))
        self.glue["put_dashboards"].add_to_role_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutDashboard"],
            resources=self._arns("dashboard", "{project}_*", service="cloudwatch", region="")))
        # Every end, whatever caused it: a stopped execution, a timeout, or an error no Catch
        # sees (States.DataLimitExceeded, States.Runtime) still releases and is recorded; a
        # training execution that ended so is notified (its job may still be running).
        rule = events.Rule(self, "ExecutionEnded", event_pattern=events.EventPattern(
            source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
            detail={"stateMachineArn": [self.deploy.state_machine_arn,
                                        self.retire.state_machine_arn,
                                        self.train.state_machine_arn],
                    "status": ENDED_STATUSES}))
        rule.add_target(targets.LambdaFunction(ended, retry_attempts=8))

    def _acknowledge(self) -> None:
        reason = ("SageMaker and CloudWatch resources are named after the project "
                  "(<project>-<stage>..., <project>_metrics); the project prefix is the "
                  "narrowest stable scope")
        for project in self._projects:
            for machine, kinds in ((self.deploy, ("endpoint", "endpoint-config", "model")),
                                   (self.retire, ("endpoint",)),
                                   (self.train, ("training-job",))):
                for kind in kinds:
                    nag.wildcard(machine, nag.arn(self, "sagemaker", f"{kind}/{project}-*"),
                                 reason)
            for machine in (self.deploy, self.retire):
                nag.wildcard(machine, nag.arn(self, "cloudwatch", f"alarm:{project}-*"), reason)
                nag.wildcard(machine, nag.arn(self, "cloudwatch", f"dashboard/{project}_*",
                                              regional=False), reason)
            nag.wildcard(self.glue["put_dashboards"], nag.arn(
                self, "cloudwatch", f"dashboard/{project}_*", regional=False), reason)
            nag.wildcard(self.glue["check_smoke"],
                         nag.arn(self, "sagemaker", f"endpoint/{project}-*"), reason)
        for name, fn in self.glue.items():
            if name == "execution_ended":
                continue  # EventBridge invokes it, not a state machine
            machine = self.retire if name.startswith("retire") else self.deploy
            nag.wildcard(machine, f"{nag.attr(fn)}:*",
                         "LambdaInvoke may call the glue function's versions and aliases")
        for machine in (self.deploy, self.retire):
            nag.wildcard(machine, f"{nag.attr(self.lock)}:*",
                         "LambdaInvoke may call the lock function's versions and aliases")
        for user in (self.lock, self.glue["execution_ended"], self.deploy, self.retire):
            nag.actions(user, ["kms:GenerateDataKey*", "kms:ReEncrypt*"],
                        "grants on the lock table and the SNS topic, both encrypted with "
                        "our one KMS key")

    # --- helpers --------------------------------------------------------------------------
    def _arns(self, resource: str, pattern: str, service: str = "sagemaker",
              region: str | None = None) -> list[str]:
        """ARNs of ``resource`` scoped to the configured projects' name prefixes."""
        stack = Stack.of(self)
        return [stack.format_arn(service=service, resource=resource, region=region,
                                 resource_name=pattern.format(project=p))
                for p in self._projects]

    def _alarm_arns(self) -> list[str]:
        stack = Stack.of(self)
        return [stack.format_arn(service="cloudwatch", resource="alarm",
                                 resource_name=f"{p}-*",
                                 arn_format=_colon()) for p in self._projects]

    def _sdk(self, id_: str, service: str, action: str, resources: list[str], *,
             request: str, iam_action: str | None = None,
             result_path: str | None = DISCARD,
             result_selector: dict[str, str] | None = None,
             additional_iam_statements: list[iam.PolicyStatement] | None = None,
             ) -> tasks.CallAwsService:
        """An aws-sdk Task sending the request a glue step built at ``request`` (a path such
        as ``$.deploy.create_model``), field by field (see ``deployment_request_fields``)."""
        return tasks.CallAwsService(
            self, id_, service=service, action=action, iam_resources=resources,
            iam_action=iam_action, parameters=self._parameters(request),
            result_path=result_path, result_selector=result_selector,
            additional_iam_statements=additional_iam_statements)

    def _parameters(self, request: str) -> dict[str, object]:
        prefix, _, name = request.removeprefix("$.").partition(".")
        return {field: sfn.JsonPath.object_at(f"{request}.{field}")
                for field in self._fields[prefix][name]}

    def _lambda(self, id_: str, name: str, payload: dict[str, object],
                result_path: str | None) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self, id_, lambda_function=self._steps[name],
            payload=sfn.TaskInput.from_object(payload), payload_response_only=True,
            result_path=result_path, retry_on_service_exceptions=True)

    def _locked(self, prefix: str, kind: str, body: sfn.IChainable) -> sfn.IChainable:
        """Take the endpoint's lock first: an execution that does not get it ends at once as
        busy, touching no tag (the reconciler or the next event tries again); one that
        cannot reach DynamoDB fails without touching any either."""
        acquire = self._lambda(f"{prefix}AcquireLock", "acquire_lock", {
            "request": sfn.JsonPath.object_at("$"), "kind": kind,
            "execution": sfn.JsonPath.string_at("$$.Execution.Id")}, "$.lock")
        # The lock step's own error (throttling, KMS access denied) as the cause, which the
        # execution-ended handler sends on: nothing else would say why nothing happens.
        acquire.add_catch(sfn.Fail(self, f"{prefix}LockUnavailable", error="LockUnavailable",
                                   cause_path=sfn.JsonPath.string_at("$.error.Cause")),
                          errors=TASK_FAILED, result_path="$.error")
        busy = sfn.Succeed(self, f"{prefix}EndpointBusy", comment=(
            "another execution deploys or retires this endpoint; nothing was touched"))
        free = sfn.Choice(self, f"{prefix}EndpointFree?").when(
            sfn.Condition.boolean_equals("$.lock.acquired", True), body).otherwise(busy)
        return acquire.next(free)

    def _release(self, id_: str, then: sfn.State) -> sfn.IChainable:
        """Release this execution's lock (only if it still holds it), then go on to ``then``
        whatever DynamoDB says: the lock expires, and the execution-ended handler retries."""
        release = tasks.CallAwsService(
            self, id_, service="dynamodb", action="deleteItem",
            iam_action="dynamodb:DeleteItem", iam_resources=[self.locks.table_arn], parameters={
                "TableName": self.locks.table_name,
                "Key": {"pk": {"S": sfn.JsonPath.string_at("$.lock.key")}},
                "ConditionExpression": "#o = :me",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":me": {
                    "S": sfn.JsonPath.string_at("$.lock.owner")}}},
            result_path=DISCARD)
        release.add_catch(then, errors=TASK_FAILED, result_path="$.release_error")
        return release.next(then)

    def _machine(self, name: str, definition: sfn.IChainable,
                 timeout: Duration) -> sfn.StateMachine:
        log_group = logs.LogGroup(self, f"{name}Logs", retention=self._log_retention,
                                  encryption_key=self._key,
                                  removal_policy=RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            self, name, definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=timeout, tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL,
                                include_execution_data=True))
        Validations.of(machine).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="only for actions without resource-level permissions: X-Ray, CloudWatch "
                   "Logs delivery, Application Auto Scaling targets and policies"))
        return machine

    # --- deploy ---------------------------------------------------------------------------
    def _deploy_definition(self) -> sfn.IChainable:
        """Replacement: the new version is smoke-tested on a candidate endpoint of its own
        (deleted whatever the outcome) before the live endpoint is updated, so the live
        endpoint never sends an untested version traffic and a failed test leaves it as it
        was. First deployment: the new endpoint is smoke-tested itself, deleted on failure.
        A failure after the update puts the previous config back and waits until it serves
        before the failure is recorded. See docs/aws.md for the diagram."""
        endpoints = self._arns("endpoint", "{project}-*")
        configs = self._arns("endpoint-config", "{project}-*")
        models = self._arns("model", "{project}-*")

        def on_error(state: sfn.TaskStateBase, target: sfn.IChainable,
                     result_path: str = "$.error") -> None:
            state.add_catch(target, errors=TASK_FAILED, result_path=result_path)

        def status_is(path: str, *states: str) -> sfn.Condition:
            return sfn.Condition.or_(*[sfn.Condition.string_equals(path, s) for s in states])

        def describe(id_: str, request: str, result_path: str) -> tasks.CallAwsService:
            return self._sdk(id_, "sagemaker", "describeEndpoint", endpoints, request=request,
                             result_path=result_path, result_selector={
                                 "EndpointStatus.$": "$.EndpointStatus",
                                 "EndpointConfigName.$": "$.EndpointConfigName"})

        def failure_reason(id_: str, request: str, error: str) -> tasks.CallAwsService:
            # Only reached when the endpoint is Failed, which is when SageMaker sets a
            # FailureReason; read before the endpoint is deleted, as it goes with it.
            return self._sdk(id_, "sagemaker", "describeEndpoint", endpoints, request=request,
                             result_path="$.error", result_selector={
                                 "Error": error,
                                 "Cause.$": "States.Format('endpoint {} is {}: {}', "
                                            "$.EndpointName, $.EndpointStatus, "
                                            "$.FailureReason)"})

        def wait(id_: str) -> sfn.Wait:
            return sfn.Wait(self, id_,
                            time=sfn.WaitTime.duration(Duration.seconds(ENDPOINT_POLL_S)))

        # Failure: tags first (apply.fail), then the notification, then the Fail state.
        failed = sfn.Fail(self, "DeploymentFailed", cause="see the model version's tags",
                          error="DeploymentFailed")
        release_failed = self._release("ReleaseLockAfterFailure", failed)
        notify = tasks.SnsPublish(
            self, "NotifyFailure", topic=self.topic,
            subject=sfn.JsonPath.string_at("$.notice.subject"),
            message=sfn.TaskInput.from_json_path_at("$.notice.message"),
            result_path=DISCARD).next(release_failed)
        notify_raw = tasks.SnsPublish(
            self, "NotifyUnrecordedFailure", topic=self.topic,
            subject="Deployment failed and could not be recorded in MLflow",
            message=sfn.TaskInput.from_json_path_at("$"), result_path=DISCARD).next(
            release_failed)
        request = sfn.JsonPath.object_at("$$.Execution.Input")
        record_failure = self._lambda(
            "RecordFailure", "finish",
            {"request": request, "outcome": "failed",
             "error": sfn.JsonPath.object_at("$.error")}, "$.notice")
        # A separate state, because a payload may not name a path that is absent (that is
        # States.Runtime, which no Catch catches): only this one has $.revert_error.
        record_unreverted = self._lambda(
            "RecordUnrevertedFailure", "finish",
            {"request": request, "outcome": "failed",
             "error": sfn.JsonPath.object_at("$.error"),
             "revert_error": sfn.JsonPath.object_at("$.revert_error")}, "$.notice")
        for record in (record_failure, record_unreverted):
            on_error(record, notify_raw, "$.record_error")
            record.next(notify)

        # After the update: put the previous config back and wait until it serves again, or
        # delete a brand-new endpoint (it served nothing before).
        revert = sfn.Choice(self, "HadPreviousVersion?")
        revert_update = self._sdk("RevertEndpoint", "sagemaker", "updateEndpoint",
                                  endpoints + configs, request="$.deploy.revert_endpoint")
        wait_revert = wait("WaitForRevert")
        describe_revert = describe("DescribeRevertedEndpoint", "$.deploy.describe_endpoint",
                                   "$.revert")
        revert_failed = sfn.Pass(self, "RevertFailed", result_path="$.revert_error",
                                 parameters={"Error": "RevertFailed", "Cause.$": (
                                     "States.Format('{} is {} on config {}, not back on {}', "
                                     "$.deploy.spec.endpoint, $.revert.EndpointStatus, "
                                     "$.revert.EndpointConfigName, $.deploy.previous_config)")})
        reverted = sfn.Choice(self, "Reverted?")
        reverted.when(sfn.Condition.and_(
            sfn.Condition.string_equals("$.revert.EndpointStatus", "InService"),
            sfn.Condition.string_equals_json_path("$.revert.EndpointConfigName",
                                                  "$.deploy.previous_config")), record_failure)
        reverted.when(status_is("$.revert.EndpointStatus", *sm.WAITING_STATES), wait_revert)
        reverted.otherwise(revert_failed)
        revert_failed.next(record_unreverted)
        for step in (revert_update, describe_revert):
            on_error(step, record_unreverted, "$.revert_error")
        revert_update.next(wait_revert)
        wait_revert.next(describe_revert).next(reverted)
        delete_new = self._sdk("DeleteNewEndpoint", "sagemaker", "deleteEndpoint", endpoints,
                               request="$.deploy.delete_endpoint")
        on_error(delete_new, record_failure, "$.revert_error")
        delete_new.next(record_failure)
        revert.when(sfn.Condition.boolean_equals("$.deploy.endpoint_exists", True),
                    revert_update).otherwise(delete_new)

        resolve = self._lambda("Resolve", "resolve",
                               {"request": sfn.JsonPath.object_at("$"),
                                "execution": sfn.JsonPath.string_at("$$.Execution.Name")},
                               "$.deploy")
        create_model = self._sdk("CreateModel", "sagemaker", "createModel", models,
                                 request="$.deploy.create_model")
        create_config = self._sdk("CreateEndpointConfig", "sagemaker", "createEndpointConfig",
                                  configs, request="$.deploy.create_endpoint_config")
        alarm_errors = self._sdk("PutErrorsAlarm", "cloudwatch", "putMetricAlarm",
                                 self._alarm_arns(), request="$.deploy.alarm_errors")
        alarm_latency = self._sdk("PutLatencyAlarm", "cloudwatch", "putMetricAlarm",
                                  self._alarm_arns(), request="$.deploy.alarm_latency")

        # The candidate: the new version alone on an endpoint no client knows.
        candidate_config = self._sdk("CreateCandidateConfig", "sagemaker",
                                     "createEndpointConfig", configs,
                                     request="$.deploy.create_candidate_config")
        candidate = self._sdk("CreateCandidateEndpoint", "sagemaker", "createEndpoint",
                              endpoints + configs, request="$.deploy.create_candidate_endpoint")
        wait_candidate = wait("WaitForCandidate")
        describe_candidate = describe("DescribeCandidate",
                                      "$.deploy.describe_candidate_endpoint", "$.candidate")
        candidate_failed = sfn.Pass(self, "CandidateFailed", result_path="$.error", parameters={
            "Error": "CandidateFailed",
            "Cause.$": "States.Format('candidate endpoint {} is {}; see its FailureReason', "
                       "$.deploy.spec.candidate_endpoint, $.candidate.EndpointStatus)"})
        candidate_reason = failure_reason("CandidateFailureReason",
                                          "$.deploy.describe_candidate_endpoint",
                                          "CandidateFailed")
        smoke_candidate = self._smoke_test("SmokeTestCandidate")
        delete_candidate = self._sdk("DeleteCandidate", "sagemaker", "deleteEndpoint",
                                     endpoints, request="$.deploy.delete_candidate_endpoint")
        delete_failed_candidate = self._sdk("DeleteFailedCandidate", "sagemaker",
                                            "deleteEndpoint", endpoints,
                                            request="$.deploy.delete_candidate_endpoint")
        candidate_ready = sfn.Choice(self, "CandidateReady?")
        candidate_ready.when(sfn.Condition.string_equals("$.candidate.EndpointStatus",
                                                         "InService"), smoke_candidate)
        candidate_ready.when(status_is("$.candidate.EndpointStatus", *sm.WAITING_STATES),
                             wait_candidate)
        candidate_ready.otherwise(candidate_failed)

        # The live endpoint.
        create_endpoint = self._sdk("CreateEndpoint", "sagemaker", "createEndpoint",
                                    endpoints + configs,
                                    request="$.deploy.create_endpoint")
        update_endpoint = self._sdk("UpdateEndpoint", "sagemaker", "updateEndpoint",
                                    endpoints + configs,
                                    request="$.deploy.update_endpoint")
        wait_endpoint = wait("WaitForEndpoint")
        describe_endpoint = describe("DescribeEndpoint", "$.deploy.describe_endpoint",
                                     "$.endpoint")
        rolled_back = sfn.Pass(self, "RolledBackByAlarm", result_path="$.error",
                               parameters={"Error": "RolledBack", "Cause": (
                                   "the endpoint went back to the previous version during the "
                                   "blue/green update (an alarm fired, or the new fleet failed "
                                   "its health checks); see the endpoint's FailureReason")})
        endpoint_failed = sfn.Pass(self, "EndpointFailed", result_path="$.error", parameters={
            "Error": "EndpointFailed",
            "Cause.$": "States.Format('endpoint {} is {}; see its FailureReason in SageMaker', "
                       "$.deploy.spec.endpoint, $.endpoint.EndpointStatus)"})
        endpoint_reason = failure_reason("EndpointFailureReason", "$.deploy.describe_endpoint",
                                         "EndpointFailed")
        smoke_new = self._smoke_test("SmokeTestNewEndpoint")
        scalable = self._sdk(
            "RegisterScalableTarget", "applicationautoscaling", "registerScalableTarget", ["*"],
            iam_action="application-autoscaling:RegisterScalableTarget",
            request="$.deploy.scalable_target",
            # Autoscaling needs its service-linked role the first time in an account.
            additional_iam_statements=[iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"], resources=["*"],
                conditions={"StringEquals": {
                    "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}})])
        policy = self._sdk("PutScalingPolicy", "applicationautoscaling", "putScalingPolicy",
                           ["*"], iam_action="application-autoscaling:PutScalingPolicy",
                           request="$.deploy.scaling_policy")
        # Built in the step, not passed in the state: the bodies are tens of KB.
        boards = self._lambda("PutDashboards", "put_dashboards", {
            "spec": sfn.JsonPath.object_at("$.deploy.spec"),
            "smoke": sfn.JsonPath.object_at("$.deploy.smoke")}, DISCARD)
        record_success = self._lambda(
            "RecordSuccess", "finish", {"request": request, "outcome": "succeeded"},
            "$.notice")
        succeeded = sfn.Succeed(self, "Deployed")
        release_ok = self._release("ReleaseLock", succeeded)
        # The new version serves even if MLflow is down right now; the reconciler repairs
        # the tags later, so this is still a success (and says so in the logs).
        on_error(record_success, release_ok, "$.record_error")

        # Before anything serves the new version, a failure has nothing to undo.
        for state in (resolve, create_model, create_config, alarm_errors, alarm_latency,
                      candidate_config, candidate, create_endpoint, update_endpoint):
            on_error(state, record_failure)
        for state in (describe_candidate, smoke_candidate):
            on_error(state, delete_failed_candidate)
        on_error(candidate_reason, delete_failed_candidate, "$.reason_error")
        on_error(delete_failed_candidate, record_failure, "$.cleanup_error")
        # The version passed: a candidate that will not go is deleted by the next
        # deployment or by retire, and is no reason to keep the old version.
        on_error(delete_candidate, update_endpoint, "$.cleanup_error")
        # After the update (or a first deployment's create): undo, then record.
        for state in (describe_endpoint, smoke_new, scalable, policy,
                      boards):
            on_error(state, revert)
        on_error(endpoint_reason, revert, "$.reason_error")

        candidate_config.next(candidate).next(wait_candidate)
        wait_candidate.next(describe_candidate).next(candidate_ready)
        smoke_candidate.next(delete_candidate).next(update_endpoint)
        candidate_failed.next(candidate_reason).next(delete_failed_candidate)
        delete_failed_candidate.next(record_failure)

        smoke_first = sfn.Choice(self, "NewEndpointNeedsSmokeTest?").when(
            sfn.Condition.and_(
                sfn.Condition.boolean_equals("$.deploy.endpoint_exists", False),
                sfn.Condition.not_(sfn.Condition.is_null("$.deploy.smoke"))),
            smoke_new.next(scalable)).otherwise(scalable)
        scalable.next(policy).next(boards).next(record_success).next(release_ok)

        ready = sfn.Choice(self, "EndpointReady?")
        ready.when(sfn.Condition.and_(
            sfn.Condition.string_equals("$.endpoint.EndpointStatus", "InService"),
            sfn.Condition.string_equals_json_path("$.endpoint.EndpointConfigName",
                                                  "$.deploy.spec.config_name")), smoke_first)
        ready.when(sfn.Condition.string_equals("$.endpoint.EndpointStatus", "InService"),
                   rolled_back)
        ready.when(status_is("$.endpoint.EndpointStatus", *sm.WAITING_STATES), wait_endpoint)
        ready.otherwise(endpoint_failed)
        wait_endpoint.next(describe_endpoint).next(ready)
        rolled_back.next(record_failure)
        endpoint_failed.next(endpoint_reason).next(revert)
        update_endpoint.next(wait_endpoint)
        create_endpoint.next(wait_endpoint)

        test_first = sfn.Choice(self, "HasTestSlice?").when(
            sfn.Condition.is_null("$.deploy.smoke"), update_endpoint).otherwise(
            candidate_config)
        exists = sfn.Choice(self, "EndpointExists?").when(
            sfn.Condition.boolean_equals("$.deploy.endpoint_exists", True),
            test_first).otherwise(create_endpoint)
        resolve.next(create_model).next(create_config).next(alarm_errors).next(
            alarm_latency).next(exists)
        return self._locked("", "deploy", resolve)

    def _smoke_test(self, id_: str) -> tasks.LambdaInvoke:
        # A reference in, nothing out: the slice and the answer never enter the state.
        return self._lambda(id_, "check_smoke",
                            {"smoke": sfn.JsonPath.object_at("$.deploy.smoke")}, DISCARD)

    # --- retire ---------------------------------------------------------------------------
    def _retire_definition(self) -> sfn.IChainable:
        endpoints = self._arns("endpoint", "{project}-*")
        dashboards = self._arns("dashboard", "{project}_*", service="cloudwatch", region="")
        failed = sfn.Fail(self, "RetireFailed", error="RetireFailed",
                          cause="see the execution's failed step")
        notify = tasks.SnsPublish(self, "NotifyRetireFailure", topic=self.topic,
                                  subject="Retiring an endpoint failed",
                                  message=sfn.TaskInput.from_json_path_at("$"),
                                  result_path=DISCARD).next(
            self._release("ReleaseRetireLockAfterFailure", failed))
        plan = self._lambda("PlanRetire", "retire_plan",
                            {"request": sfn.JsonPath.object_at("$")}, "$.plan")
        plan.add_catch(notify, errors=TASK_FAILED, result_path="$.error")

        def tolerant(state: sfn.TaskStateBase) -> sfn.TaskStateBase:
            # Deleting what is already gone is fine: retire is idempotent.
            state.add_catch(sfn.Pass(self, f"{state.node.id}Skipped"), errors=TASK_FAILED,
                            result_path="$.skipped")
            return state

        delete_endpoint = self._sdk("DeleteEndpoint", "sagemaker", "deleteEndpoint",
                                    endpoints, request="$.plan.delete_endpoint")
        deregister = self._sdk("DeregisterScalableTarget", "applicationautoscaling",
                               "deregisterScalableTarget", ["*"],
                               iam_action="application-autoscaling:DeregisterScalableTarget",
                               request="$.plan.deregister_scalable_target")
        delete_alarms = self._sdk("DeleteAlarms", "cloudwatch", "deleteAlarms",
                                  self._alarm_arns(), request="$.plan.delete_alarms")
        delete_boards = self._sdk("DeleteDashboards", "cloudwatch", "deleteDashboards",
                                  dashboards, request="$.plan.delete_dashboards")
        finish = self._lambda("RecordRetired", "retire_finish",
                              {"request": sfn.JsonPath.object_at("$$.Execution.Input")},
                              "$.result")
        finish.add_catch(notify, errors=TASK_FAILED, result_path="$.error")
        done = sfn.Succeed(self, "Retired")

        # The project's dashboards show every stage: they go with its last endpoint only.
        boards = sfn.Choice(self, "LastEndpointOfProject")
        boards.when(sfn.Condition.boolean_equals("$.plan.keep_dashboards", True), finish)
        boards.otherwise(delete_boards)

        chain: list[sfn.IChainable] = [delete_endpoint, deregister, delete_alarms, boards]
        plan.next(chain[0])
        for state, following in [*itertools.pairwise(chain), (delete_boards, finish)]:
            assert isinstance(state, sfn.TaskStateBase)
            tolerant(state).next(following)
            skipped = self.node.find_child(f"{state.node.id}Skipped")
            assert isinstance(skipped, sfn.Pass)
            skipped.next(following)
        finish.next(self._release("ReleaseRetireLock", done))
        return self._locked("Retire", "retire", plan)

    # --- train ----------------------------------------------------------------------------
    def _train_definition(self, *, sagemaker_role: iam.IRole, image_uri: str,
                          output_uri: str, instance_type: str, volume_gb: int,
                          max_runtime_s: int, environment: dict[str, str],
                          vpc_config: dict[str, object] | None) -> sfn.IChainable:
        jobs = self._arns("training-job", "{project}-*")
        failed = sfn.Fail(self, "TrainingFailed", error="TrainingFailed",
                          cause="see the notification and the training job's FailureReason")
        notify = tasks.SnsPublish(
            self, "NotifyTrainingFailure", topic=self.topic,
            subject="Training failed",
            message=sfn.TaskInput.from_json_path_at("$"), result_path=DISCARD).next(failed)
        job_params = {
            "TrainingJobName": sfn.JsonPath.string_at("$.training_job_name"),
            "AlgorithmSpecification": {"TrainingImage": image_uri,
                                       "TrainingInputMode": "File"},
            "RoleArn": sagemaker_role.role_arn,
            # Everything the shared entrypoint reads from hyperparameters.json.
            "HyperParameters": {
                "project": sfn.JsonPath.string_at("$.project"),
                "trigger": sfn.JsonPath.string_at("$.trigger"),
                "data_location": sfn.JsonPath.string_at("$.data_location"),
                "data_version": sfn.JsonPath.string_at("$.data_version"),
                "training_job": sfn.JsonPath.string_at("$.training_job_name"),
            },
            "InputDataConfig": [{
                "ChannelName": "training",
                "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": sfn.JsonPath.string_at("$.data_location"),
                    "S3DataDistributionType": "FullyReplicated"}},
            }],
            "OutputDataConfig": {"S3OutputPath": output_uri},
            "ResourceConfig": {"InstanceType": instance_type, "InstanceCount": 1,
                               "VolumeSizeInGB": volume_gb},
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
            "Environment": environment,
            "Tags": [{"Key": "mlops:project", "Value": sfn.JsonPath.string_at("$.project")}],
        }
        if vpc_config is not None:
            # With the MLflow stack the job must reach MLflow's ALB, which admits only the
            # NAT's address: so it runs in the private subnets as one of MLflow's clients.
            job_params["VpcConfig"] = vpc_config
        if self._key is not None:
            job_params["OutputDataConfig"]["KmsKeyId"] = self._key.key_arn  # type: ignore[index]
        create = tasks.CallAwsService(
            self, "CreateTrainingJob", service="sagemaker", action="createTrainingJob",
            iam_resources=jobs, parameters=job_params, result_path=DISCARD)
        create.add_catch(notify, errors=TASK_FAILED, result_path="$.error")
        wait = sfn.Wait(self, "WaitForTraining",
                        time=sfn.WaitTime.duration(Duration.seconds(TRAINING_POLL_S)))
        describe = tasks.CallAwsService(
            self, "DescribeTrainingJob", service="sagemaker", action="describeTrainingJob",
            iam_resources=jobs,
            parameters={"TrainingJobName": sfn.JsonPath.string_at("$.training_job_name")},
            result_path="$.job", result_selector={
                "TrainingJobStatus.$": "$.TrainingJobStatus",
                "SecondaryStatus.$": "$.SecondaryStatus"})
        describe.add_catch(notify, errors=TASK_FAILED, result_path="$.error")
        reason = tasks.CallAwsService(
            self, "FailureReason", service="sagemaker", action="describeTrainingJob",
            iam_resources=jobs,
            parameters={"TrainingJobName": sfn.JsonPath.string_at("$.training_job_name")},
            result_path="$.error", result_selector={
                "Error.$": "$.TrainingJobStatus",
                "Cause.$": "$.FailureReason"})
        reason.add_catch(notify, errors=TASK_FAILED, result_path="$.error")
        reason.next(notify)
        stopped = sfn.Pass(self, "TrainingStopped", result_path="$.error",
                           parameters={"Error": "Stopped",
                                       "Cause": "the training job was stopped"}).next(notify)
        done = sfn.Succeed(self, "Trained", comment=(
            "the job registered the version, tagged its lineage and ran the promotion gate"))
        status = sfn.Choice(self, "TrainingDone?")
        status.when(sfn.Condition.string_equals("$.job.TrainingJobStatus", "Completed"), done)
        status.when(sfn.Condition.string_equals("$.job.TrainingJobStatus", "Failed"), reason)
        status.when(sfn.Condition.string_equals("$.job.TrainingJobStatus", "Stopped"), stopped)
        status.otherwise(wait)
        wait.next(describe).next(status)
        return create.next(wait)


def _colon():  # type: ignore[no-untyped-def]
    from aws_cdk import ArnFormat

    return ArnFormat.COLON_RESOURCE_NAME
