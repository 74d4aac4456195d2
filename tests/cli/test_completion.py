"""``levered complete``: the script works in a plain bash and in zsh, without bash-completion."""

from __future__ import annotations

import shutil
import subprocess

import pytest

# Each line: the words typed, then (after " -> ") the candidates offered for the last word.
CASES = {
    ("levered", "con"): ["config"],
    ("levered", "config", ""): ["get", "list", "set"],
    ("levered", "--debug", "config", "s"): ["set"],
    ("levered", "--api-url", "http://x", "config", ""): ["get", "list", "set"],
    ("levered", "auth", "api-keys", ""): ["create", "list", "revoke"],
    ("levered", "help", "config", "l"): ["list"],
    ("levered", "config", "get", "--js"): ["--json"],
    ("levered", "--ver"): ["--verbose", "--version"],
    ("levered", "optimizations", "lift"): ["lift-history"],
    ("levered", "optimizations", "g"): ["guardrails"],
    ("levered", "optimizations", "pro"): ["progress"],
    ("levered", "optimizations", "rep"): ["report-data"],
    ("levered", "optimizations", "create", "--guard"): ["--guardrail", "--guardrail-metric-ids"],
    ("levered", "optimizations", "report-data", "--f"): ["--format"],
    ("levered", "metrics", "u"): ["usage"],
    ("levered", "en"): ["env"],
    ("levered", "env", ""): ["use", "--help", "--json", "-h"],  # a command that also begins `env use`
    ("levered", "env", "--j"): ["--json"],
}
PROBE = """
probe() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _levered;
          echo "${COMPREPLY[*]}"; }
"""


def calls(script: str) -> str:
    lines = [script, PROBE]
    for words in CASES:
        lines.append("probe " + " ".join(f"'{word}'" for word in words))
    return "\n".join(lines) + "\n"


def expected() -> list[str]:
    return [" ".join(candidates) for candidates in CASES.values()]


def test_bash_script_needs_no_bash_completion_package(cli):
    run = cli("complete")
    assert run.exit_code == 0, run.stderr
    assert "_get_comp_words_by_ref" not in run.stdout and "${!" not in run.stdout
    shell = subprocess.run(["bash", "--norc", "--noprofile"], input=calls(run.stdout) + "complete -p levered\n",
                           capture_output=True, text=True, timeout=30, check=False)
    assert shell.stderr == ""
    assert shell.stdout.splitlines() == [*expected(), "complete -F _levered levered"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_script_works_in_a_bare_zsh(cli):
    run = cli("complete", "--shell", "zsh")
    assert run.exit_code == 0, run.stderr
    shell = subprocess.run(["zsh", "-f"], input=calls(run.stdout) + "print -r -- $_comps[levered]\n",
                           capture_output=True, text=True, timeout=30, check=False)
    assert shell.stderr == ""
    assert shell.stdout.splitlines() == [*expected(), "_bash_complete -F _levered"]


ZPTY = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='%% '; autoload -U compinit && compinit -u; source {script}; levered() {{ :; }}"
zpty -w -n z $'{typed}\t'
sleep 1
zpty -w -n z $'\C-a echo TYPED:\C-m'
sleep 1
while zpty -rt z line; do print -r -- "$line"; done
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_completes_on_tab_in_an_interactive_shell(cli, tmp_path):
    script = tmp_path / "levered.zsh"
    script.write_text(cli("complete", "--shell", "zsh").stdout)
    for typed, line in (("levered con", "TYPED:levered config"), ("levered config s", "TYPED:levered config set")):
        driver = ZPTY.format(script=script, typed=typed)
        shell = subprocess.run(["zsh", "-f"], input=driver, capture_output=True, text=True, timeout=30, check=False)
        assert any(out.strip() == line for out in shell.stdout.replace("\r", "\n").splitlines()), shell.stdout


def test_complete_help_says_how_to_install_it(cli):
    run = cli("complete", "--help")
    assert run.exit_code == 0
    assert "--shell {bash,zsh}" in run.stdout
    assert "source <(levered complete --shell zsh)" in " ".join(run.stdout.split())
    assert "Print a completion script for bash or zsh" in cli("--help").stdout
