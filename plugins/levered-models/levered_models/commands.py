"""``levered models …``: list, state, train, create, delete."""

from __future__ import annotations

import argparse

from levered_core import humanize as h
from levered_core import inputs, interaction, views
from levered_core.errors import UsageError
from levered_core.plugin_api import Command, Lister, Result, ShowOne


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="model ID or a unique prefix of it")


class ListModels(Lister):
    """List models, most recently updated first"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--limit", type=inputs.bounded_int(1, 100), default=10, help="at most N (1-100, default 10)")
        parser.add_argument("--include-archived", action="store_true", help="also models of archived optimizations")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.models.list(parsed_args.limit, parsed_args.include_archived)
        rows = [(h.short_id(m["id"]), h.short_id(m["optimization_id"]), m["model_type"], m["status"], m["version"],
                 h.ago(m.get("trained_at")), (m.get("last_run") or {}).get("outcome", "-"), h.ago(m["updated_at"]))
                for m in body["models"]]
        columns = ("ID", "Optimization", "Type", "Status", "Version", "Trained", "Last run", "Updated")
        return Result(columns, rows, body)


class ShowModelState(ShowOne):
    """Show a model's posterior: expected reward, P(best), weight"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.models.state(self.client.models.resolve(parsed_args.id))
        return Result.text(views.model_state(body), body)


class TrainModel(Command):
    """Train a model now on the latest observations"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_argument(parser)
        parser.add_argument("--bias", metavar="JSON", help='exploration bias per factor, e.g. {"headline": 0.5}; {} clears')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        bias = None if parsed_args.bias is None else inputs.json_flag("--bias", parsed_args.bias, dict)
        model_id = self.client.models.resolve(parsed_args.id)
        with interaction.progress("Training in the warehouse"):
            body = self.client.models.train(model_id, bias)
        expected = (body.get("in_sample_metrics") or {}).get("expected_reward")
        tail = (f"; expected reward {h.number(expected['mean'])} [{h.number(expected['ci_lower'])}, "
                f"{h.number(expected['ci_upper'])}]") if expected else " (below the burn-in minimum: no new version)"
        text = f"Model {body['model_id']}: {body['status']}, version {body['version']}, {body['observations']} observations{tail}"
        return Result.text(text, body)


class CreateModel(Command):
    """Create a new model for an optimization without one"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("optimization_id", help="optimization ID or a unique prefix of it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.optimizations.new_model(self.client.optimizations.resolve(parsed_args.optimization_id))
        return Result.text(f"Created model {body['id']} ({body['model_type']}, untrained)", body)


class DeleteModel(Command):
    """Delete a model (its live optimization stops serving)"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_argument(parser)
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        model_id = self.client.models.resolve(parsed_args.id)
        if not parsed_args.yes:
            model = self.client.models.get(model_id)
            interaction.confirm(f"Delete model {model_id} of optimization {model['optimization_id']}?", False)
        body = self.client.models.delete(model_id)
        if not body.get("deleted"):
            raise UsageError(f"the server did not delete model {model_id}")
        return Result.text(f"Deleted model {model_id}", body)
