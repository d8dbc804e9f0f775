"""The Terraform CLI for the tests: the machine's binary and its provider mirror, offline.

No registry is reachable here, so ``terraform init`` installs the AWS provider from a
filesystem mirror (``-plugin-dir``) and checks it against the committed lock files.
Where either is missing the Terraform tests skip, naming what is missing and where it
was looked for (see terraform/README.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROVIDER_VERSION = "5.100.0"
MIRRORS = ("/opt/tf-plugins", "~/.terraform.d/plugins", "/usr/share/terraform/plugins")


@dataclass(frozen=True)
class Terraform:
    """A terraform (or tofu) binary and the plugin mirror holding the AWS provider."""

    binary: str
    plugin_dir: str

    def run(
        self, cwd: Path, *args: str, data_dir: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``terraform <args>`` in ``cwd`` with its working data in ``data_dir``."""
        environ = {
            **os.environ,
            "TF_CLI_CONFIG_FILE": os.devnull,  # no user config: no registry, no credentials
            "TF_DATA_DIR": str(data_dir),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            **(env or {}),
        }
        return subprocess.run(
            [self.binary, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=900
        )

    def init(self, cwd: Path, *, data_dir: Path, backend: bool = False) -> None:
        """``terraform init`` from the mirror, against the committed lock file."""
        args = ["init", "-no-color", f"-plugin-dir={self.plugin_dir}", "-lockfile=readonly"]
        done = self.run(cwd, *args, *([] if backend else ["-backend=false"]), data_dir=data_dir)
        if done.returncode != 0:
            raise AssertionError(f"terraform init failed in {cwd}:\n{done.stdout}\n{done.stderr}")


def find_terraform() -> Terraform | str:
    """The machine's Terraform, or why it cannot be used (a sentence for the skip)."""
    binary = (
        os.environ.get("LAKEHOUSE_TERRAFORM") or shutil.which("terraform") or shutil.which("tofu")
    )
    if not binary:
        return "no terraform or tofu binary on the PATH (or $LAKEHOUSE_TERRAFORM)"
    candidates = [os.environ.get("LAKEHOUSE_TF_PLUGIN_DIR", ""), *MIRRORS]
    for candidate in filter(None, candidates):
        folder = Path(candidate).expanduser()
        for host in ("registry.terraform.io", "registry.opentofu.org"):
            if (folder / host / "hashicorp" / "aws" / PROVIDER_VERSION).is_dir():
                return Terraform(binary, str(folder))
    return (
        f"no filesystem mirror of hashicorp/aws {PROVIDER_VERSION} in "
        f"{', '.join(filter(None, candidates))} (set $LAKEHOUSE_TF_PLUGIN_DIR)"
    )
