"""``levered complete``: a self-contained completion script for bash and zsh.

cliff's own script calls ``_get_comp_words_by_ref`` from the bash-completion package and
bash's ``${!name}``, so it fails in a plain bash and in zsh. This one reads only
``COMP_WORDS``/``COMP_CWORD`` and ``compgen``, which bash has built in and zsh's
``bashcompinit`` provides; the command tree is a ``case`` table generated from the
installed commands.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from cliff import command

from levered_core.errors import PluginError

if TYPE_CHECKING:
    from levered_core.app import LeveredApp

#: Global options that take a value: the word after them is not a command.
VALUE_OPTIONS = ("--api-url", "--log-file")

_FUNCTION = r"""
_levered() {
  [ -n "${ZSH_VERSION-}" ] && setopt localoptions ksharrays shwordsplit
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" word candidates="" helping="" i=1
  local REPLY=""
  while [ "$i" -lt "$COMP_CWORD" ]; do
    word="${COMP_WORDS[i]}"
    i=$((i + 1))
    case "$prev" in __VALUE_OPTIONS__) prev=""; continue ;; esac
    prev="$word"
    case "$word" in -*) continue ;; esac
    if [ -z "$path" ] && [ -z "$helping" ] && [ "$word" = help ]; then
      helping=1; continue
    fi
    _levered_words "$path" && case "$REPLY" in -*) break ;; esac
    if _levered_words "${path:+$path }$word"; then
      path="${path:+$path }$word"
    else
      COMPREPLY=( $(compgen -f -- "$cur") ); return 0
    fi
  done
  case "$prev" in __VALUE_OPTIONS__) COMPREPLY=( $(compgen -f -- "$cur") ); return 0 ;; esac
  _levered_words "$path"
  case "$REPLY" in
    -*) if [ -n "$helping" ]; then candidates=""
        elif [ "${cur#-}" != "$cur" ]; then candidates="$REPLY"
        else COMPREPLY=( $(compgen -f -- "$cur") ); return 0; fi ;;
    *) if [ "${cur#-}" != "$cur" ]; then
         if [ -z "$path" ]; then candidates="__GLOBAL_OPTIONS__"
         else case " $REPLY" in *" -"*) candidates="$REPLY" ;; *) candidates="-h --help" ;; esac; fi
       else candidates="$REPLY"; fi ;;
  esac
  COMPREPLY=()
  for word in $candidates; do
    case "$word" in "$cur"*) COMPREPLY+=("$word") ;; esac
  done
  return 0
}
complete -F _levered levered
"""

_ZSH_PRELUDE = """\
# For zsh: uses zsh's bashcompinit (and runs compinit if it has not run yet).
(( ${+functions[compdef]} )) || { autoload -U +X compinit && compinit; }
autoload -U +X bashcompinit && bashcompinit
"""


def _quote(words: str) -> str:
    return "'" + words.replace("'", "'\\''") + "'"


def tree(manifest: dict[str, Any], options: dict[str, list[str]]) -> dict[str, list[str]]:
    """Map each path of words (``""``, ``"auth"``, ``"auth api-keys"``) to its next words.

    :param options: each command's option strings; a command's entry is its options.
    """
    nodes: dict[str, list[str]] = {"": ["complete", "help"]}
    for group in manifest["groups"]:
        nodes[""].append(group)
        nodes.setdefault(group, [])
    for name in manifest["commands"]:
        words = name.split()
        for depth in range(len(words) - 1):
            nodes.setdefault(" ".join(words[:depth]), []).append(words[depth])
            nodes.setdefault(" ".join(words[:depth + 1]), [])
        nodes.setdefault(" ".join(words[:-1]), []).append(words[-1])
    result = {path: sorted(set(words)) for path, words in nodes.items()}
    for path, strings in options.items():
        # A command that also begins longer ones (`env` and `env use`): its next words first, so
        # the script keeps descending, then its own options.
        result[path] = result.get(path, []) + strings
    return result


def script(nodes: dict[str, list[str]], global_options: list[str], shell: str = "bash") -> str:
    """Render the completion script for ``shell`` (``bash`` or ``zsh``)."""
    cases = "".join(f"    {_quote(path)}) REPLY={_quote(' '.join(words) or '-h --help')} ;;\n"
                    for path, words in sorted(nodes.items()))
    table = f'_levered_words() {{\n  case "$1" in\n{cases}    *) REPLY=""; return 1 ;;\n  esac\n}}\n'
    body = (_FUNCTION.replace("__VALUE_OPTIONS__", "|".join(VALUE_OPTIONS))
            .replace("__GLOBAL_OPTIONS__", " ".join(global_options)))
    header = f"# levered completion for {shell}: source it (needs no bash-completion package)\n"
    return header + (_ZSH_PRELUDE if shell == "zsh" else "") + table + body


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return sorted({opt for action in parser._actions for opt in action.option_strings})


class CompleteLevered(command.Command):
    """Print a completion script for bash or zsh"""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--shell", choices=("bash", "zsh"), default="bash",
                            help="the shell to complete for (default: bash); zsh uses its bashcompinit")
        parser.epilog = ("bash: add `source <(levered complete)` to ~/.bashrc (no bash-completion package "
                         "needed); zsh: add `source <(levered complete --shell zsh)` to ~/.zshrc. "
                         "Run it again after installing plugins.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        from levered_core.globalopts import build_parser

        app: LeveredApp = self.app  # type: ignore[assignment]
        options = {"complete": _option_strings(self.get_parser("levered complete"))}
        for name in app.manifest["commands"]:
            try:
                factory, cmd_name, _ = app.command_manager.find_command(name.split())
                options[name] = _option_strings(factory(app, None, cmd_name=cmd_name).get_parser(f"levered {name}"))
            except PluginError:
                continue  # already reported as a plugin problem; its name still completes
        global_options = _option_strings(build_parser())
        app.stdout.write(script(tree(app.manifest, options), global_options, parsed_args.shell))
        return 0
