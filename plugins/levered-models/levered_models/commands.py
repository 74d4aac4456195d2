"""``levered models …``: list, state, train, create, delete."""

from __future__ import annotations

import argparse
from typing import Any

from levered_core.errors import NotFound, UsageError
from levered_core.plugin_api import (
    Cell,
    Command,
    Lister,
    Result,
    ShowOne,
    ago,
    bounded_int,
    confirm,
    json_flag,
    model_state_text,
    number,
    progress,
    short_id,
)


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="model ID or a unique prefix of it")


def _owner(client: Any, model_id: str) -> str:
    """`` of optimization <id>`` for the prompt, or nothing where the server does not say."""
    try:
        owner = client.models.get(model_id).get("optimization_id")
    except NotFound:  # GET /models/:id is not on every server; the delete itself says if the model is gone
        return ""
    return f" of optimization {owner}" if owner else ""


class ListModels(Lister):
    """List models, most recently updated first"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--limit", type=bounded_int(1, 100), default=10, help="at most N (1-100, default 10)")
        parser.add_argument("--include-archived", action="store_true", help="also models of archived optimizations")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.models.list(parsed_args.limit, parsed_args.include_archived)
        rows = [(Cell(m.get("id"), short_id), Cell(m.get("optimization_id"), short_id), Cell(m.get("model_type")),
                 Cell(m.get("status")), Cell(m.get("version")), Cell(m.get("trained_at"), ago),
                 Cell(m.get("last_run"), lambda run: str(run.get("outcome") or "-")), Cell(m.get("updated_at"), ago))
                for m in body.get("models") or []]
        columns = ("ID", "Optimization", "Type", "Status", "Version", "Trained", "Last run", "Updated")
        return Result(columns, rows, body)


class ShowModelState(ShowOne):
    """Show a model's posterior: expected reward, P(best), traffic"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_argument(parser)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.models.state(self.client.models.resolve(parsed_args.id))
        return Result.text(model_state_text(body), body)


class TrainModel(Command):
    """Train a model now on the latest observations"""

    check_command = "levered models list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_argument(parser)
        parser.add_argument("--bias", metavar="JSON", help='exploration bias per factor, e.g. {"headline": 0.5}; {} clears')
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        bias = None if parsed_args.bias is None else json_flag("--bias", parsed_args.bias, dict)
        model_id = self.client.models.resolve(parsed_args.id)
        with progress("Training in the warehouse"):
            body = self.client.models.train(model_id, bias)
        expected = (body.get("in_sample_metrics") or {}).get("expected_reward")
        tail = (f"; expected reward {number(expected.get('mean'))} [{number(expected.get('ci_lower'))}, "
                f"{number(expected.get('ci_upper'))}]") if expected else " (below the burn-in minimum: no new version)"
        version, observations = (("-" if body.get(k) is None else body[k]) for k in ("version", "observations"))
        text = (f"Model {body.get('model_id') or model_id}: {body.get('status') or '-'}, version {version}, "
                f"{observations} observations{tail}")
        return Result.text(text, body)


class CreateModel(Command):
    """Create a new model for an optimization without one"""

    check_command = "levered models list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("optimization_id", help="optimization ID or a unique prefix of it")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        body = self.client.optimizations.new_model(self.client.optimizations.resolve(parsed_args.optimization_id))
        return Result.text(f"Created model {body.get('id') or '-'} ({body.get('model_type') or '-'}, untrained)", body)


class DeleteModel(Command):
    """Delete a model (its live optimization stops serving)"""

    check_command = "levered models list"

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_argument(parser)
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> Result:
        model_id = self.client.models.resolve(parsed_args.id)
        if not parsed_args.yes:
            confirm(f"Delete model {model_id}{_owner(self.client, model_id)}?", False)
        body = self.client.models.delete(model_id)
        if body.get("deleted") is False:  # a 2xx is a deletion; only an explicit "no" is not
            raise UsageError(f"the server did not delete model {model_id}")
        return Result.text(f"Deleted model {model_id}", body)
