# pipeline_lib.py: what the pipeline suites (test_pipeline.py,
# test_pipeline_ops.py) share beyond zkit_testlib.
#
# This Source Code Form is subject to the terms of the Mozilla Public
# License, v. 2.0. If a copy of the MPL was not distributed with this
# file, You can obtain one at http://mozilla.org/MPL/2.0/.

import os
import shutil
import tempfile


class Workdir:
    """A temporary directory removed when the test ends."""

    def __init__(self, prefix="zkit-pipeline-"):
        self.prefix = prefix

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix=self.prefix)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)
        return False

    def file(self, name):
        return os.path.join(self.path, name)
