"""Turn the settings of an opendkim.conf into a MilterConfig, one option at a time.

Every error is a ConfigError at the line that set the value; every value
keeps that line (``MilterConfig.origins``) so later checks can point at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from mailseal.config.datasets import Dataset, DatasetKind, open_dataset
from mailseal.config.grammar import Setting, read_config
from mailseal.config.keyfiles import KeyReader, load_key_file
from mailseal.config.model import OnAction, Warnings
from mailseal.config.peers import PeerList
from mailseal.config.settings import DEFAULT_OMIT_HEADERS, MilterConfig
from mailseal.config.tables import (
    ALGORITHMS,
    DomainSigning,
    NoSigning,
    Options,
    SigningPolicy,
    TableSigning,
    algorithm_for,
    build_table_signing,
)
from mailseal.config.values import (
    parse_authserv_id,
    parse_canonicalization,
    parse_mode,
    parse_nameservers,
    parse_restart_rate,
    parse_socket,
    parse_syslog_facility,
    parse_umask,
    parse_user_id,
)
from mailseal.dkim.keys import KeyType, SigningKey
from mailseal.dkim.sign import DEFAULT_SIGN_HEADERS
from mailseal.errors import ConfigError, Where

#: On-* options and the MilterConfig field each sets; On-Default sets them all first.
ON_ACTIONS: Final[dict[str, str]] = {
    "On-BadSignature": "on_bad_signature",
    "On-KeyNotFound": "on_key_not_found",
    "On-NoSignature": "on_no_signature",
    "On-DNSError": "on_dns_error",
    "On-InternalError": "on_internal_error",
    "On-Security": "on_security",
    "On-SignatureError": "on_signature_error",
}
_BOOLEANS: Final[dict[str, str]] = {
    "AlwaysAddARHeader": "always_add_ar",
    "AutoRestart": "auto_restart",
    "Background": "background",
    "FixCRLF": "fix_crlf",
    "KeepAuthResults": "keep_auth_results",
    "LogResults": "log_results",
    "LogWhy": "log_why",
    "MultipleSignatures": "multiple_signatures",
    "RemoveARAll": "remove_ar_all",
    "RemoveOldSignatures": "remove_old_signatures",
    "RequireSafeKeys": "require_safe_keys",
    "SoftwareHeader": "software_header",
    "SubDomains": "sub_domains",
    "Syslog": "syslog",
    "SyslogSuccess": "syslog_success",
}
# Whole-number options: field, smallest allowed value.
_NUMBERS: Final[dict[str, tuple[str, int]]] = {
    "AutoRestartCount": ("auto_restart_count", 0),
    "ClockDrift": ("clock_drift", 0),
    "DNSTimeout": ("dns_timeout", 0),
    "MaximumHeaders": ("maximum_headers", 0),
    "MaximumSignaturesToVerify": ("maximum_signatures_to_verify", 0),
    "MinimumKeyBits": ("minimum_key_bits", 0),
}
#: RSA keys under this many bits make signatures receivers ignore (RFC 8301 §3.2).
RSA_FLOOR: Final = 1024


def build_config(path: Path, key_reader: KeyReader | None) -> MilterConfig:
    """Read ``path`` and everything it names into a MilterConfig."""
    warnings = Warnings()
    settings = read_config(path, warnings)
    return _Builder(path, settings, warnings, key_reader).build()


class _Builder:
    def __init__(
        self,
        path: Path,
        settings: dict[str, Setting],
        warnings: Warnings,
        key_reader: KeyReader | None,
    ) -> None:
        self.path = path
        self.s = settings
        self.warnings = warnings
        self.key_reader = key_reader
        self.values: dict[str, object] = {}

    def build(self) -> MilterConfig:
        v = self.values
        self._alias("X-Header", "SoftwareHeader")
        for name, attr in _BOOLEANS.items():
            if name in self.s:
                v[attr] = self.s[name].flag
        for name, (attr, least) in _NUMBERS.items():
            if name in self.s:
                v[attr] = self._number(name, least)
        self._simple_values()
        self._actions()
        self._lists()
        v["signing"] = self._signing()
        v["warnings"] = self.warnings.freeze()
        v["origins"] = {name: setting.where for name, setting in self.s.items()}
        return MilterConfig(path=self.path, **v)  # type: ignore[arg-type]

    # --- helpers --------------------------------------------------------------

    def _alias(self, old: str, new: str) -> None:
        if old in self.s:
            self.warnings.add(self.s[old].where, f"{old} is deprecated; write {new} instead")
            self.s.setdefault(new, self.s.pop(old))

    def _number(self, name: str, least: int) -> int:
        setting = self.s[name]
        assert setting.number is not None
        if setting.number < least:
            raise ConfigError(
                setting.where, name, f"{name} cannot be {setting.number}", f"use {least} or more"
            )
        return setting.number

    def _base_dir(self, setting: Setting) -> Path:
        base = self.values.get("base_directory")
        return base if isinstance(base, Path) else setting.where.path.parent

    def _dataset(self, name: str, *, icase: bool = True) -> Dataset | None:
        setting = self.s.get(name)
        if setting is None:
            return None
        return open_dataset(
            setting.value,
            setting.where,
            name,
            self.warnings,
            base_dir=self._base_dir(setting),
            icase=icase,
        )

    def _names(self, name: str) -> list[str] | None:
        """A list-valued option's items (file: or csl:; OpenDKIM refuses refile: here)."""
        dataset = self._dataset(name)
        if dataset is None:
            return None
        if dataset.kind is DatasetKind.REFILE:
            raise ConfigError(
                dataset.where,
                name,
                f"{name} cannot be a refile: dataset",
                "list the names, e.g. csl:a,b or file:/path with one per line",
            )
        return list(dataset.keys())

    # --- single values --------------------------------------------------------

    def _simple_values(self) -> None:
        v, s = self.values, self.s
        if "BaseDirectory" in s:
            v["base_directory"] = _directory(s["BaseDirectory"])
        if "Mode" in s:
            v["mode_sign"], v["mode_verify"] = parse_mode(s["Mode"])
        if "Socket" in s:
            v["socket"] = parse_socket(s["Socket"])
        if "Canonicalization" in s:
            v["header_canon"], v["body_canon"] = parse_canonicalization(s["Canonicalization"])
        if "SignatureAlgorithm" in s:
            v["signature_algorithm"] = self._signature_algorithm(s["SignatureAlgorithm"])
        if "AuthservID" in s:
            v["authserv_id"] = parse_authserv_id(s["AuthservID"])
        if "Nameservers" in s:
            v["nameservers"] = parse_nameservers(s["Nameservers"])
        if "UMask" in s:
            v["umask"] = parse_umask(s["UMask"], self.warnings)
        if "UserID" in s:
            v["user_id"] = parse_user_id(s["UserID"])
        if "PidFile" in s:
            v["pid_file"] = Path(s["PidFile"].value)
        if "SyslogFacility" in s:
            v["syslog_facility"] = parse_syslog_facility(s["SyslogFacility"], self.warnings)
        if "SyslogName" in s:
            v["syslog_name"] = s["SyslogName"].value
        if "AutoRestartRate" in s:
            v["auto_restart_rate"] = parse_restart_rate(
                s["AutoRestartRate"], bool(v.get("auto_restart")), self.warnings
            )
        if "MaximumSignedBytes" in s:
            v["maximum_signed_bytes"] = self._number("MaximumSignedBytes", 0)
        if "SignatureTTL" in s:
            ttl = self._number("SignatureTTL", 0)
            v["signature_ttl"] = ttl or None  # OpenDKIM compat: 0 means no x=
        if "MailsealWorkers" in s:
            v["workers"] = self._number("MailsealWorkers", 1)

    def _signature_algorithm(self, setting: Setting) -> str:
        text = setting.value.lower()
        if text == "rsa-sha1":
            # OpenDKIM difference: it would sign with rsa-sha1, which no receiver accepts.
            self.warnings.add(
                setting.where,
                "rsa-sha1 signatures are not valid (RFC 8301); mailseal signs with rsa-sha256",
            )
            return "rsa-sha256"
        if text not in ALGORITHMS:
            raise ConfigError(
                setting.where,
                "SignatureAlgorithm",
                f"unknown signing algorithm {setting.value!r}",
                "use rsa-sha256 or ed25519-sha256",
            )
        return text

    def _actions(self) -> None:
        default = self.s.get("On-Default")
        if default is not None:
            action = _action(default)
            for attr in ON_ACTIONS.values():
                self.values[attr] = action
        for name, attr in ON_ACTIONS.items():
            if name in self.s:
                self.values[attr] = _action(self.s[name])

    # --- lists ------------------------------------------------------------------

    def _lists(self) -> None:
        v = self.values
        for name, attr in (
            ("InternalHosts", "internal_hosts"),
            ("ExternalIgnoreList", "external_ignore"),
            ("PeerList", "peer_list"),
        ):
            dataset = self._dataset(name)
            if dataset is not None:
                v[attr] = PeerList.from_dataset(dataset, self.warnings)
        names = self._names("MTA")
        if names is not None:
            v["mta_names"] = tuple(names)  # OpenDKIM compat: compared with case
        if "MacroList" in self.s:
            v["macro_list"] = self._macros()
        for name, attr in (
            ("OversignHeaders", "oversign_headers"),
            ("SenderHeaders", "sender_headers"),
        ):
            names = self._names(name)
            if names is not None:
                v[attr] = tuple(dict.fromkeys(n.lower() for n in names))
        names = self._names("RemoveARFrom")
        if names is not None:
            v["remove_ar_from"] = tuple(n.lower() for n in names)
        omit = self._header_delta("OmitHeaders", DEFAULT_OMIT_HEADERS)
        sign = self._header_delta("SignHeaders", DEFAULT_SIGN_HEADERS)
        omit = tuple(h for h in omit if h != "from")  # From must be signed (RFC 6376 §5.4)
        if "from" not in sign:
            sign = ("from", *sign)
        v["omit_headers"] = omit
        v["sign_headers"] = tuple(h for h in sign if h not in omit)

    def _header_delta(self, name: str, base: tuple[str, ...]) -> tuple[str, ...]:
        """A header-name list; with a ``*`` item, ``+x``/``-x`` edit the default instead."""
        items = self._names(name)
        if items is None:
            return base
        lowered = [i.lower() for i in items]
        if "*" not in lowered:
            return tuple(dict.fromkeys(i for i in lowered if i != "."))
        result = list(base)
        for item in lowered:
            if item.startswith("-"):
                result = [h for h in result if h != item[1:]]
            elif item.startswith("+"):
                result.append(item[1:])
            elif item != "*":
                # OpenDKIM difference: it ignores a bare name in a "*" list.
                self.warnings.add(
                    self.s[name].where,
                    f"OpenDKIM ignores {item!r} in a list with '*'; "
                    f"mailseal adds it (write +{item})",
                )
                result.append(item)
        return tuple(dict.fromkeys(result))

    def _macros(self) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
        dataset = self._dataset("MacroList")
        assert dataset is not None
        if dataset.kind is DatasetKind.REFILE:
            raise ConfigError(
                dataset.where,
                "MacroList",
                "MacroList must be a file: or csl: dataset",
                "e.g. MacroList daemon_name=ORIGINATING",
            )
        merged: dict[str, list[str] | None] = {}
        for entry in dataset.entries:
            name, eq, inline = entry.key.partition("=")
            value = inline if eq else entry.value
            name = name.strip().strip("{}")  # OpenDKIM adds the braces itself
            if not name:
                raise ConfigError(entry.where, "MacroList", f"{entry.key!r} names no macro")
            values = [x.strip() for x in value.split("|") if x.strip()] if value else []
            if name not in merged or not values or merged[name] is None:
                merged[name] = values or None
            else:
                merged[name] = [*(merged[name] or []), *values]
        return tuple((n, tuple(vs) if vs else None) for n, vs in merged.items())

    # --- signing ----------------------------------------------------------------

    def _signing(self) -> SigningPolicy:
        s = self.s
        legacy = [name for name in ("Domain", "Selector", "KeyFile") if name in s]
        if "KeyTable" in s:
            for name in legacy:
                self.warnings.add(s[name].where, f"{name} is ignored because KeyTable is set")
            return self._tables()
        if "SigningTable" in s and self.values.get("mode_sign", True):
            raise ConfigError(
                s["SigningTable"].where,
                "SigningTable",
                "SigningTable needs a KeyTable",
                "add KeyTable, e.g. KeyTable refile:/etc/opendkim/KeyTable",
            )
        return self._domain_mode()

    def _tables(self) -> SigningPolicy:
        s = self.s
        key_table = self._dataset("KeyTable", icase=False)  # OpenDKIM compat: names keep case
        signing_table = self._dataset("SigningTable")
        assert key_table is not None
        if not self.values.get("mode_sign", True):
            return NoSigning()
        if signing_table is None:
            raise ConfigError(
                s["KeyTable"].where,
                "KeyTable",
                "KeyTable needs a SigningTable to say which key signs which sender",
                "add SigningTable, e.g. SigningTable refile:/etc/opendkim/SigningTable",
            )
        multiple = bool(self.values.get("multiple_signatures", False))
        policy = build_table_signing(signing_table, key_table, multiple, self._options())
        self._check_sizes(policy)
        return policy

    def _domain_mode(self) -> SigningPolicy:
        s = self.s
        domain_set = self._dataset("Domain")
        if not self.values.get("mode_sign", True):
            return NoSigning()
        if ("KeyFile" in s) != ("Selector" in s):
            there = s.get("KeyFile") or s["Selector"]
            raise ConfigError(
                there.where,
                there.option.name,
                "KeyFile and Selector go together",
                "set both, or use KeyTable and SigningTable",
            )
        if domain_set is not None and "KeyFile" not in s:
            raise ConfigError(
                s["Domain"].where, "Domain", "Domain needs KeyFile and Selector", "set both"
            )
        if "KeyFile" not in s:
            return NoSigning()
        keyfile = s["KeyFile"]
        if domain_set is None:
            self.warnings.add(
                keyfile.where, "KeyFile and Selector are set but Domain is not: nothing is signed"
            )
            return NoSigning()
        path = Path(keyfile.value)
        if not path.is_absolute():
            path = self._base_dir(keyfile) / path
        opts = self._options()
        key = load_key_file(
            path, keyfile.where, "KeyFile", opts.reader, opts.require_safe, self.warnings
        )
        self._check_key_size(key, keyfile.where)
        return DomainSigning(
            domains=domain_set,
            selector=s["Selector"].value,
            key=key,
            keyname=keyfile.value,
            subdomains=bool(self.values.get("sub_domains", False)),
            algorithm=algorithm_for(key, None, opts.rsa_algorithm),
        )

    def _options(self) -> Options:
        algorithm = str(self.values.get("signature_algorithm", "rsa-sha256"))
        base = self.values.get("base_directory")
        return Options(
            reader=self._reader(),
            require_safe=bool(self.values.get("require_safe_keys", True)),
            base_dir=base if isinstance(base, Path) else None,
            rsa_algorithm=algorithm if algorithm.startswith("rsa-") else "rsa-sha256",
            warnings=self.warnings,
        )

    def _reader(self) -> KeyReader:
        if self.key_reader is not None:
            return self.key_reader
        user = self.s.get("UserID")
        if user is None:
            return KeyReader.current()
        try:
            return KeyReader.for_user(user.value)
        except LookupError:
            name = user.value.partition(":")[0]
            raise ConfigError(
                user.where,
                "UserID",
                f"there is no user (or group) {user.value!r} to check the key files against",
                f"create it (adduser --system {name}) or fix UserID",
            ) from None

    def _check_sizes(self, policy: TableSigning) -> None:
        for record in policy.records.values():
            keys = [record.key] if record.key is not None else list(record.by_domain.values())
            for key in keys:
                self._check_key_size(key, record.where)

    def _check_key_size(self, key: SigningKey, where: Where) -> None:
        if key.type is KeyType.RSA and key.bits < RSA_FLOOR:
            self.warnings.add(
                where,
                f"the {key.bits}-bit RSA key makes signatures receivers ignore "
                f"(RFC 8301 asks for at least {RSA_FLOOR} bits; use 2048)",
            )


def _action(setting: Setting) -> OnAction:
    action = OnAction.parse(setting.value)
    if action is None:
        raise ConfigError(
            setting.where,
            setting.option.name,
            f"{setting.option.name} cannot be {setting.value!r}",
            "use accept, discard, quarantine, reject or tempfail",
        )
    return action


def _directory(setting: Setting) -> Path:
    path = Path(setting.value)
    if not path.is_absolute():
        path = setting.where.path.parent / path
    try:
        ok = path.is_dir()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(setting.where, "BaseDirectory", f"{path} is not a directory")
    return path


__all__ = ["ON_ACTIONS", "build_config"]
