"""Validation in both directions (CW-7): objects, metadata rows and the join.

Shape, like sync: pure comparisons over sorted streams (``findings``,
``tally``, ``objects_compare``, ``sample``) decide; executors (``objects``)
list, HEAD and read; ``report``, ``html`` and ``terminal`` render one result;
``history`` keeps findings in the state store; ``repair`` feeds the sync
engine with the keys a run found wrong; ``run`` ties them together.
"""
