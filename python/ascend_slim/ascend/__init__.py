"""Huawei Ascend 310 deployment: AIPP, ATC, MindX pipelines and postprocess configs, MindX and ACL backends.

Everything here is written against the documented CANN / MindX SDK interfaces; the SDK modules (``acl``,
``StreamManagerApi``) are imported only when a backend is opened.
"""
