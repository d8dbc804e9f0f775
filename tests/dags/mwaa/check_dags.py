"""The DAGs under MWAA's Airflow: run by the venv of ``tests/dags/mwaa/requirements.txt``.

``python check_dags.py <result.json> <logical date>`` (Airflow's home, DB, DAG folder
and AWS in the environment; the DAG folder is the one ``lakehouse package`` builds for
MWAA, with the project's packages inside) migrates Airflow's DB, parses the DAG folder
as the scheduler does and runs ``lakehouse_daily`` with ``dag.test()``; the result
names the versions it ran on, every import error and each task's state. Stdlib and
Airflow only: this file runs outside the project's venv.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path


def main(result: Path, logical: str) -> int:
    import airflow
    from airflow.providers.amazon import __version__ as amazon

    try:  # Airflow 3.0 keeps DagBag in airflow.models (3.1+: airflow.dag_processing)
        from airflow.models.dagbag import DagBag
    except ImportError:
        from airflow.dag_processing.dagbag import DagBag  # type: ignore[no-redef]

    airflow_cli = Path(sys.executable).parent / "airflow"
    migrated = subprocess.run([str(airflow_cli), "db", "migrate"], capture_output=True, text=True)
    if migrated.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrated.stderr[-3000:]}")
    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    # Airflow 3's DAG processor and task runner put the DAG bundle's root on sys.path
    # (dag_processing/processor.py): MWAA's dags/ folder, where our packages sit
    sys.path.append(folder)
    bag = DagBag(dag_folder=folder, include_examples=False)
    found: dict[str, object] = {
        "python": sys.version.split()[0],
        "airflow": airflow.__version__,
        "amazon": amazon,
        "dags": sorted(bag.dag_ids),
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "states": {},
    }
    tasks = sys.modules.get("aws.airflow_tasks")  # imported by the DAG files, if they parsed
    found["project_from"] = str(Path(tasks.__file__).parents[1]) if tasks and tasks.__file__ else ""
    if "lakehouse_daily" in bag.dags:
        date = dt.datetime.fromisoformat(logical).replace(tzinfo=dt.UTC)
        run = bag.dags["lakehouse_daily"].test(logical_date=date)
        found["states"] = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    result.write_text(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[2]))
