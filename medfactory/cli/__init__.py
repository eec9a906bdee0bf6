"""The `medfactory` command line.

Thin on purpose: each command group lives in `medfactory/cli/`, and heavy
libraries (torch, transformers, LLaMA-Factory) are imported only inside the
commands that need them, so `medfactory --help` answers at once.
"""

from __future__ import annotations

import click

from converters.download import DownloadError
from converters.records import SourceError
from converters.registry import RegistryError
from deploy.auth import AuthError
from deploy.chat_templates import TemplateError
from deploy.client import EndpointError
from deploy.gateway import GatewayError
from deploy.instances import NoSuchInstance
from deploy.monitor import MonitorError
from deploy.process import ServerStartError
from deploy.tls import TLSError
from medfactory.ab.chat import ChatError
from medfactory.access.errors import AccessError
from medfactory.cli import cluster as cluster_commands
from medfactory.cli import models as models_commands
from medfactory.cli.ab import ab, chat, gateway, monitor
from medfactory.cli.access import audit, users
from medfactory.cli.common import ExampleGroup, with_example
from medfactory.cli.data import data
from medfactory.cli.demo import demo
from medfactory.cli.dev import dev
from medfactory.cli.eval import eval_group
from medfactory.cli.loadtest import loadtest
from medfactory.cli.rag import rag
from medfactory.cli.recipe import recipe
from medfactory.cli.review import review
from medfactory.cli.reward import reward
from medfactory.cli.run import export, predict, train
from medfactory.cli.serve import serve, verify_command
from medfactory.cli.verifiable import attach as attach_sampling
from medfactory.cli.vram import vram
from medfactory.cli.webui import webui
from medfactory.dev.demo import DemoFailed
from medfactory.evaluation.errors import ExamError, JudgeError
from medfactory.evaluation.scoring import PredictionsError
from medfactory.rag.errors import RagError
from medfactory.recipes.presets import RecipeError
from medfactory.recipes.run import CommandFailed
from medfactory.recipes.webui import WebUIError
from medfactory.review.errors import REVIEW_ERRORS
from medfactory.rewards.errors import RewardError

# Mistakes a user can fix: shown as one message, without a traceback.
USER_ERRORS = (
    *REVIEW_ERRORS,
    *cluster_commands.ERRORS,
    *models_commands.ERRORS,
    AccessError,
    AuthError,
    ChatError,
    CommandFailed,
    DemoFailed,
    DownloadError,
    EndpointError,
    ExamError,
    FileNotFoundError,
    GatewayError,
    JudgeError,
    MonitorError,
    NoSuchInstance,
    PredictionsError,
    RagError,
    RecipeError,
    RegistryError,
    RewardError,
    ServerStartError,
    SourceError,
    TemplateError,
    TLSError,
    WebUIError,
)


class MedfactoryGroup(ExampleGroup):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=MedfactoryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medfactory")
def cli() -> None:
    """Medical-domain fine-tuning with LLaMA-Factory and vLLM.

    Convert medical dialogues, train from checked-in recipes, evaluate, serve
    with the matching chat template and load-test -- each stage one command.
    """


attach_sampling(data)  # data sample; data convert exam|medical-o1-verifiable
cli.add_command(with_example("medfactory data convert huatuo FILE.jsonl --name huatuo")(data))
cli.add_command(
    with_example("medfactory recipe render --model tiny --dataset huatuo_sample")(recipe)
)
for command in (train, predict, export, vram):
    cli.add_command(command)
cli.add_command(
    with_example("medfactory eval predictions generated_predictions.jsonl")(eval_group),
    name="eval",
)
cli.add_command(
    with_example("medfactory serve --model saves/tiny/lora/merged --template qwen")(serve)
)
cli.add_command(verify_command, name="verify")
cli.add_command(demo)
cli.add_command(
    with_example("medfactory review create r1 --a A.jsonl --b B.jsonl --raters d1,d2")(review)
)
cli.add_command(loadtest)
for command in (gateway, chat, monitor):
    cli.add_command(command)
cli.add_command(with_example("medfactory ab report --json")(ab))
cli.add_command(webui)
cli.add_command(with_example("medfactory rag index DOCS/ --name guidelines")(rag))
cli.add_command(with_example("medfactory dev tiny-model .cache/tiny-model")(dev))
cli.add_command(with_example("medfactory reward serve --verifier safety")(reward))
cli.add_command(with_example("medfactory deploy k8s --out k8s/")(cluster_commands.deploy))
cli.add_command(with_example("medfactory models list")(models_commands.models))
cli.add_command(with_example("medfactory users add dr.li --role clinician")(users))
cli.add_command(with_example("medfactory audit verify")(audit))


def main() -> None:
    cli(prog_name="medfactory")
