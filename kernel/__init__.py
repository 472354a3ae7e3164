"""The shared kernel: what every part of fanmeter stands on and nothing else.

The one ``MetaData`` and declarative ``Base`` (``kernel.db``), the UTC instant column type and
engine factory beside them, the settings every process reads (``kernel.settings``) and the time
values, instants and ``Month`` (``kernel.instants``, pure), and the rule of which addresses an
account's backend may point at (``kernel.network_policy``, pure stdlib: the admin service applies
it at configuration, the broker at connect time). ``metering``, ``billing`` and
``broker`` import it; it imports none of them (tests/unit/test_layering.py).
"""
