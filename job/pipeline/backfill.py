"""A QLDB journal export into MySQL, as a bounded Flink job (run by job/cli/local/backfill.py).

The data objects the export's completed manifests list become a bounded source
(``from_collection`` of their keys, rebalanced over the job's parallelism); each is cut
into ranges of a few blocks (connectors/formats/export_ranges.py), and the ranges,
rebalanced again, are read and decoded by ``job/functions/export.py`` into the stream
decoder's ``ITEM_ROW``s, and from there the path is the stream's (``job.pipeline.assembly.write_items``): per-document
state (Top-1 or the ordered function), the writer, the same tables. The job FINISHES when
every object is read and every row written (the writer and the ordered function settle
what waits on the final watermark).

With ``verify`` (``backfill --verify``) the reader checks every block as ``ledgersync
verify`` does and writes only the blocks that pass; the manifests' key lists go with it,
since the chain into each object's first block is checked against the object before it.

What bounds memory: a range reader holds one range at a time (``READER_BUNDLE_SIZE``);
an ``ION_TEXT`` or ``JSON`` object is one range, the whole object.
"""
from __future__ import annotations

from typing import Optional

from pyflink.common import Types
from pyflink.table import StreamTableEnvironment

from connectors.formats.qldb_export import Export
from job.config.properties import Properties
from job.config.settings import JobSettings
from job.functions.export import ReadExportRangeFunction, SplitExportObjectFunction
from job.pipeline.assembly import write_items
from job.rows.item_rows import ITEM_ROW
from job.functions import names


# The range reader takes one range at a time: PyFlink's Python operator hands a bundle's
# elements to Python and, when the bundle ends (this many elements, or
# python.fn-execution.bundle.time), waits for all of their output, which it holds
# meanwhile without a bound; one range per bundle keeps that to one range's rows. Only
# the reader gets it (``own_bundle_size``): measured on the 300 MB export of
# tests/integration/test_large_export.py, this took 86-101 s against 122-197 s for a
# bundle size of 2 for the whole job, which makes the writer's Python operators wait for
# Python every two rows too, at a like peak memory.
READER_BUNDLE_SIZE = 1


def build_backfill(env, props: Properties, export: Export, status_dir: Optional[str] = None, *,
                   verify: bool = False) -> None:
    """The bounded job from the properties file's values (job/cli/local/backfill.py)."""
    assemble_backfill(env, JobSettings.from_properties(props), export, status_dir, verify=verify)


def assemble_backfill(env, job: JobSettings, export: Export, status_dir: Optional[str] = None, *,
                      verify: bool = False) -> None:
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.exec.uid.generation", "ALWAYS")  # as the stream job does
    keys = env.from_collection(export.keys, type_info=Types.STRING()).name(names.EXPORT_OBJECTS)
    where = dict(uri=export.uri, region=job.aws_region, endpoint=job.aws_endpoint, export_id=export.export_id,
                 export_prefix=export.prefix, output_format=export.output_format)
    # Ranges of a few blocks are the unit of work (connectors/formats/export_ranges.py): one
    # object per element, round robin over the splitters, which read only its framing; the
    # ranges round robin over the readers, so a big object is read in parallel too.
    ranges = keys.rebalance().flat_map(SplitExportObjectFunction(**where), output_type=Types.PICKLED_BYTE_ARRAY()) \
        .name(names.SPLIT_EXPORT).uid(names.SPLIT_EXPORT)
    items = ranges.rebalance().flat_map(ReadExportRangeFunction(
        **where, decode=job.decode, status_dir=status_dir, verify=verify, strands=export.strands if verify else None,
    ), output_type=ITEM_ROW).name(names.READ_EXPORT).uid(names.READ_EXPORT)
    own_bundle_size(env, items, READER_BUNDLE_SIZE)
    write_items(t_env, items, job, status_dir, bounded=True)


def own_bundle_size(env, stream, size: int) -> None:
    """Give the Python operator behind ``stream`` a bundle size of its own.

    PyFlink's Python operators hold the environment's Configuration by reference
    (pyflink/datastream/data_stream.py passes ``get_j_env_configuration(...)``) and read
    ``python.fn-execution.bundle.size`` from it when they open, so this operator gets a
    copy of it. At submission PyFlink adds the python.* keys the environment sets to every
    Python operator's configuration (PythonConfigUtil.configPythonOperator), which would
    undo the copy's value: the environment's own key is taken out, so the other Python
    operators get Flink's default (and are still bounded by ``bundle.time``)."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import get_field, get_j_env_configuration

    jvm = get_gateway().jvm
    option = jvm.org.apache.flink.python.PythonOptions.MAX_BUNDLE_SIZE
    get_j_env_configuration(env._j_stream_execution_environment).removeConfig(option)
    operator = stream._j_data_stream.getTransformation().getOperatorFactory().getOperator()
    field = get_field(operator.getClass(), "config")
    own = jvm.org.apache.flink.configuration.Configuration(field.get(operator))
    own.set(option, size)
    field.set(operator, own)
