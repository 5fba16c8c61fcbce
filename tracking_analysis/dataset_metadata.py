"""Who made a dataset, under which licence, what it relates to: the metadata repositories read.

One :class:`DatasetMetadata` is written in the formats that data repositories and citation
tools take in:

* ``CITATION.cff`` (Citation File Format 1.2.0, GitHub and Zenodo read it);
* ``datacite.json`` and ``datacite.xml`` (DataCite Metadata Schema 4.5, checked against the
  schema shipped by the ``datacite`` package; what PANGAEA, GFZ Data Services and the NFDI4Earth
  services ingest or map from);
* ``.zenodo.json`` (the metadata of Zenodo's deposition API, read by its GitHub integration and
  by ``scraiber publish``);
* the RO-Crate 1.1 root entity (:func:`write_ro_crate`, made with the ``rocrate`` library).

Creators are given on the command line as ``"Family, Given|ORCID|Affiliation"`` (ORCID and
affiliation may be empty); a fourth field, an annotator pseudonym (``u-...``), is how an
annotator opts in to be credited by name. Everyone else stays a pseudonym.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

#: Licences for data, SPDX id -> Zenodo licence id. Others are refused (a repository must
#: recognise the licence for the record to be reusable).
LICENCES = {
    "CC-BY-4.0": "cc-by-4.0",
    "CC0-1.0": "cc0-1.0",
    "CC-BY-SA-4.0": "cc-by-sa-4.0",
    "CC-BY-NC-4.0": "cc-by-nc-4.0",
    "ODC-By-1.0": "odc-by-1.0",
    "ODbL-1.0": "odbl-1.0",
    "PDDL-1.0": "pddl-1.0",
}
#: DataCite relation types accepted for related identifiers (a common subset).
RELATIONS = (
    "IsSupplementTo", "IsSupplementedBy", "IsDescribedBy", "Describes", "IsCitedBy", "Cites", "References",
    "IsReferencedBy", "IsDerivedFrom", "IsSourceOf", "IsPartOf", "HasPart", "IsNewVersionOf",
    "IsPreviousVersionOf", "IsDocumentedBy", "Documents", "Requires", "IsRequiredBy",
)  # fmt: skip
#: Zenodo's spelling of each relation (lower camel case).
ZENODO_RELATIONS = {relation: relation[0].lower() + relation[1:] for relation in RELATIONS}
DEFAULT_KEYWORDS = (
    "backscattered electron imaging", "BSE", "thin section", "basalt", "petrology", "mineral segmentation",
    "semantic segmentation", "training data", "implicit labels", "active learning",
)  # fmt: skip
_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
_DOI = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)$", re.IGNORECASE)
_IGSN = re.compile(r"^(?:igsn:|https?://igsn\.org/)?([A-Z0-9]{5,}[A-Z0-9./-]*)$", re.IGNORECASE)
_PSEUDONYM = re.compile(r"^u-[0-9a-f]{16}$")
_ROR = re.compile(r"https://ror\.org/0[a-z0-9]{8}$")
#: Home pages of repositories named as publisher.
PUBLISHERS = {
    "Zenodo": "https://zenodo.org",
    "PANGAEA": "https://www.pangaea.de",
    "GFZ Data Services": "https://dataservices.gfz-potsdam.de",
}


def orcid_checksum_ok(orcid: str) -> bool:
    """ISO 7064 MOD 11-2 check digit of a 16-character ORCID iD (``0000-0002-1825-0097``)."""
    digits = orcid.replace("-", "")
    total = 0
    for char in digits[:-1]:
        total = (total + int(char)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


def check_licence(spdx: str) -> str:
    """``spdx`` if it is a data licence a repository recognises.

    Raises:
        ValueError: listing the accepted SPDX identifiers.
    """
    if spdx not in LICENCES:
        raise ValueError(f"licence {spdx!r} is not one of the accepted SPDX identifiers: {', '.join(LICENCES)}")
    return spdx


@dataclass(frozen=True)
class Creator:
    """A person credited as creator of the dataset.

    Attributes:
        name: ``"Family, Given"`` (or as written when there is no comma).
        orcid: Bare ORCID iD (``0000-0002-1825-0097``), checked, or None.
        affiliation: Institution, or None.
        pseudonym: The annotator pseudonym of a creator who opted in to be named, or None.
    """

    name: str
    orcid: str | None = None
    affiliation: str | None = None
    pseudonym: str | None = None
    ror: str | None = None

    @classmethod
    def parse(cls, text: str) -> Creator:
        """``"Family, Given|ORCID|Affiliation[|u-pseudonym]"`` (empty fields allowed); the affiliation
        may end with its ROR id (``Brown University https://ror.org/05gq02987``).

        Raises:
            ValueError: for an empty name, a malformed or mis-checksummed ORCID, or a bad pseudonym.
        """
        parts = [part.strip() for part in text.split("|")]
        if len(parts) > 4 or not parts[0]:
            raise ValueError(f"--creator takes 'Family, Given|ORCID|Affiliation[|annotator pseudonym]', got {text!r}")
        parts += [""] * (4 - len(parts))
        name, orcid, affiliation, pseudonym = parts
        if orcid:
            match = _ORCID.match(orcid)
            if not match or not orcid_checksum_ok(match.group(1)):
                raise ValueError(f"creator {name!r}: {orcid!r} is not a valid ORCID iD (0000-0000-0000-000X, checksum)")
            orcid = match.group(1)
        if pseudonym and not _PSEUDONYM.match(pseudonym):
            raise ValueError(f"creator {name!r}: {pseudonym!r} is not an annotator pseudonym (u- and 16 hex digits)")
        ror = _ROR.search(affiliation)
        if ror:
            affiliation = affiliation[: ror.start()].strip()
        return cls(name, orcid or None, affiliation or None, pseudonym or None, ror.group(0) if ror else None)

    @property
    def family_given(self) -> tuple[str, str]:
        """(family, given) names: split at the comma, else the last word is the family name."""
        if "," in self.name:
            family, given = self.name.split(",", 1)
            return family.strip(), given.strip()
        words = self.name.split()
        return words[-1], " ".join(words[:-1])

    @property
    def orcid_url(self) -> str | None:
        """The ORCID iD as its URL."""
        return f"https://orcid.org/{self.orcid}" if self.orcid else None


@dataclass(frozen=True)
class RelatedIdentifier:
    """A publication DOI, a sample IGSN, or a URL the dataset relates to.

    Attributes:
        identifier: The identifier without resolver prefix (``10.1234/abc``, ``IEXXX0001``, a URL).
        scheme: ``DOI``, ``IGSN`` or ``URL`` (DataCite ``relatedIdentifierType``).
        relation: DataCite ``relationType`` (e.g. ``IsSupplementTo``, ``IsDerivedFrom``).
    """

    identifier: str
    scheme: str
    relation: str

    @classmethod
    def parse(cls, text: str, default_relation: str = "IsSupplementTo") -> RelatedIdentifier:
        """``"IDENTIFIER[|RelationType]"``; the scheme is recognised (DOI, IGSN with ``igsn:``, URL).

        Raises:
            ValueError: for an unknown relation type (listing the accepted ones) or an
                identifier that is none of DOI, ``igsn:...``, http(s) URL.
        """
        identifier, _, relation = (part.strip() for part in text.partition("|"))
        relation = relation or default_relation
        if relation not in RELATIONS:
            raise ValueError(f"relation {relation!r} is not one of: {', '.join(RELATIONS)}")
        if match := _DOI.match(identifier):
            return cls(match.group(1), "DOI", relation)
        if identifier.lower().startswith(("igsn:", "https://igsn.org/", "http://igsn.org/")):
            return cls.igsn(identifier, relation)
        if identifier.startswith(("https://", "http://")):
            return cls(identifier, "URL", relation)
        raise ValueError(f"related identifier {identifier!r}: give a DOI (10.xxxx/...), igsn:ID or an http(s) URL")

    @classmethod
    def igsn(cls, text: str, relation: str = "IsDerivedFrom") -> RelatedIdentifier:
        """An IGSN of a physical sample (the dataset is derived from it by default).

        Raises:
            ValueError: if ``text`` is not an IGSN.
        """
        match = _IGSN.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not an IGSN (e.g. IEXXX0001, igsn:IEXXX0001)")
        return cls(match.group(1).upper(), "IGSN", relation)

    @property
    def url(self) -> str:
        """A resolvable URL of the identifier."""
        if self.scheme == "DOI":
            return f"https://doi.org/{self.identifier}"
        if self.scheme == "IGSN":
            return f"https://igsn.org/{self.identifier}"
        return self.identifier


@dataclass(frozen=True)
class DatasetMetadata:
    """Descriptive metadata of one dataset version (see the module docstring)."""

    name: str
    title: str
    description: str
    version: str
    licence: str
    created: str
    creators: tuple[Creator, ...] = ()
    keywords: tuple[str, ...] = DEFAULT_KEYWORDS
    related: tuple[RelatedIdentifier, ...] = ()
    publisher: str = "Zenodo"
    methods: str = ""

    def __post_init__(self) -> None:
        check_licence(self.licence)
        if not self.version.strip():
            raise ValueError("the dataset needs a version (e.g. 1.0.0)")

    @property
    def licence_url(self) -> str:
        """The SPDX page of the licence."""
        return f"https://spdx.org/licenses/{self.licence}.html"

    @property
    def year(self) -> str:
        """Publication year (of ``created``)."""
        return self.created[:4]


def _yaml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def citation_cff(meta: DatasetMetadata) -> str:
    """``CITATION.cff`` text (CFF 1.2.0, type dataset)."""
    lines = [
        "cff-version: 1.2.0",
        f"message: {_yaml('If you use this dataset, please cite it as below.')}",
        "type: dataset",
        f"title: {_yaml(meta.title)}",
        f"version: {_yaml(meta.version)}",
        f"date-released: {_yaml(meta.created[:10])}",
        f"license: {_yaml(meta.licence)}",
        f"abstract: {_yaml(meta.description)}",
        "authors:",
    ]
    for creator in meta.creators:
        family, given = creator.family_given
        lines.append(f"  - family-names: {_yaml(family)}")
        if given:
            lines.append(f"    given-names: {_yaml(given)}")
        if creator.orcid_url:
            lines.append(f"    orcid: {_yaml(creator.orcid_url)}")
        if creator.affiliation:
            lines.append(f"    affiliation: {_yaml(creator.affiliation)}")
    if not meta.creators:
        lines.append(f"  - name: {_yaml('unknown (no --creator given)')}")
    lines.append("keywords:")
    lines += [f"  - {_yaml(keyword)}" for keyword in meta.keywords]
    return "\n".join(lines) + "\n"


def datacite(meta: DatasetMetadata, formats: list[str], sizes: list[str]) -> dict[str, Any]:
    """DataCite Metadata Schema 4.5 as JSON (the attributes of the DataCite REST API).

    Raises:
        ValueError: listing what the DataCite 4.5 JSON schema refuses.
    """
    from datacite import schema45

    creators = []
    for creator in meta.creators:
        family, given = creator.family_given
        entry: dict[str, Any] = {
            "name": f"{family}, {given}" if given else family,
            "nameType": "Personal",
            "familyName": family,
        }
        if given:
            entry["givenName"] = given
        if creator.orcid:
            entry["nameIdentifiers"] = [
                {"nameIdentifier": creator.orcid_url, "nameIdentifierScheme": "ORCID", "schemeUri": "https://orcid.org"}
            ]
        if creator.affiliation:
            entry["affiliation"] = [
                {
                    "name": creator.affiliation,
                    **(
                        {
                            "affiliationIdentifier": creator.ror,
                            "affiliationIdentifierScheme": "ROR",
                            "schemeUri": "https://ror.org",
                        }
                        if creator.ror
                        else {}
                    ),
                }
            ]
        creators.append(entry)
    record: dict[str, Any] = {
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Labelled BSE images (mineral masks)"},
        "creators": creators or [{"name": ":unav", "nameType": "Organizational"}],
        "titles": [{"title": meta.title}],
        "publisher": {"name": meta.publisher},
        "publicationYear": meta.year,
        "subjects": [{"subject": keyword} for keyword in meta.keywords],
        "dates": [{"date": meta.created[:10], "dateType": "Created"}],
        "language": "en",
        "relatedIdentifiers": [
            {"relatedIdentifier": r.identifier, "relatedIdentifierType": r.scheme, "relationType": r.relation}
            for r in meta.related
        ],
        "sizes": sizes,
        "formats": formats,
        "version": meta.version,
        "rightsList": [
            {
                "rights": meta.licence,
                "rightsUri": meta.licence_url,
                "rightsIdentifier": meta.licence.lower(),
                "rightsIdentifierScheme": "SPDX",
                "schemeUri": "https://spdx.org/licenses/",
            }
        ],  # fmt: skip
        "descriptions": [{"description": meta.description, "descriptionType": "Abstract"}]
        + ([{"description": meta.methods, "descriptionType": "Methods"}] if meta.methods else []),
        "schemaVersion": "http://datacite.org/schema/kernel-4",
    }
    errors = sorted(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in schema45.validator.iter_errors(record)
    )
    if errors:
        raise ValueError("DataCite metadata does not validate: " + "; ".join(errors))
    return record


def datacite_xml(record: dict[str, Any]) -> str:
    """The DataCite XML (kernel 4.5) of :func:`datacite`'s record."""
    from datacite import schema45

    return schema45.tostring(record)


def zenodo_metadata(meta: DatasetMetadata) -> dict[str, Any]:
    """The deposition metadata of Zenodo's REST API (and of ``.zenodo.json``)."""

    data: dict[str, Any] = {
        "upload_type": "dataset",
        "title": meta.title,
        "description": f"<p>{escape(meta.description)}</p>"
        + (f"<h3>Methods</h3><p>{escape(meta.methods)}</p>" if meta.methods else ""),
        "version": meta.version,
        "publication_date": meta.created[:10],
        "access_right": "open",
        "license": LICENCES[meta.licence],
        "keywords": list(meta.keywords),
        "language": "eng",
        "creators": [
            {k: v for k, v in {"name": c.name, "orcid": c.orcid, "affiliation": c.affiliation}.items() if v}
            for c in meta.creators
        ],
    }
    if meta.related:
        data["related_identifiers"] = [
            {"identifier": r.url if r.scheme == "URL" else r.identifier, "relation": ZENODO_RELATIONS[r.relation],
             "scheme": r.scheme.lower(), **({"resource_type": "publication-article"} if r.scheme == "DOI" else {})}
            for r in meta.related
        ]  # fmt: skip
    return data


@dataclass(frozen=True)
class CrateFile:
    """A file of the package as the RO-Crate describes it."""

    path: str
    name: str
    mediatype: str
    size: int
    sha256: str
    description: str = ""


def write_ro_crate(root: Path, meta: DatasetMetadata, files: list[CrateFile]) -> Path:
    """Write ``ro-crate-metadata.json`` (RO-Crate 1.1) describing ``root`` and ``files``.

    The root dataset carries name, description, licence (a contextual entity), creators
    (persons with ORCID URLs as ids and their affiliations as organisations), keywords,
    version, publisher, related identifiers (``citation`` for publications, ``isBasedOn``
    for samples) and every file with its size and SHA-256.
    """
    from rocrate.model.contextentity import ContextEntity
    from rocrate.model.person import Person
    from rocrate.rocrate import ROCrate

    crate = ROCrate(version="1.1")
    crate.name = meta.title
    crate.description = meta.description
    crate.root_dataset["version"] = meta.version
    crate.root_dataset["keywords"] = ", ".join(meta.keywords)
    crate.root_dataset["dateCreated"] = meta.created
    crate.datePublished = meta.created[:10]
    licence = crate.add(ContextEntity(crate, f"https://spdx.org/licenses/{meta.licence}", {
        "@type": "CreativeWork", "name": meta.licence, "identifier": meta.licence, "url": meta.licence_url,
    }))  # fmt: skip
    crate.license = licence
    home = PUBLISHERS.get(meta.publisher)
    crate.publisher = crate.add(ContextEntity(crate, home or f"#publisher-{_slug(meta.publisher)}",
                                              {"@type": "Organization", "name": meta.publisher, **({"url": home} if home else {})}))  # fmt: skip
    people = []
    for index, creator in enumerate(meta.creators):
        properties: dict[str, Any] = {"name": creator.name}
        if creator.affiliation:
            properties["affiliation"] = crate.add(ContextEntity(
                crate, creator.ror or f"#org-{_slug(creator.affiliation)}",
                {"@type": "Organization", "name": creator.affiliation, **({"url": creator.ror} if creator.ror else {})},
            ))  # fmt: skip
        people.append(crate.add(Person(crate, creator.orcid_url or f"#creator-{index + 1}", properties)))
    if people:
        crate.creator = _one(people)
        crate.root_dataset["author"] = _one(people)
    citations = [crate.add(ContextEntity(crate, r.url, {"@type": "ScholarlyArticle" if r.scheme == "DOI" else "CreativeWork",
                                                        "identifier": r.identifier, "name": f"{r.scheme} {r.identifier}"}))
                 for r in meta.related if r.scheme != "IGSN"]  # fmt: skip
    samples = [crate.add(ContextEntity(crate, r.url, {"@type": "Thing", "identifier": r.identifier, "name": f"Sample IGSN {r.identifier}"}))
               for r in meta.related if r.scheme == "IGSN"]  # fmt: skip
    if citations:
        crate.root_dataset["citation"] = _one(citations)
    if samples:
        crate.root_dataset["isBasedOn"] = _one(samples)
    for item in files:
        properties = {
            "name": item.name,
            "encodingFormat": item.mediatype,
            "contentSize": str(item.size),
            "sha256": item.sha256,
        }
        if item.description:
            properties["description"] = item.description
        crate.add_file(root / item.path, dest_path=item.path, properties=properties)
    crate.metadata.write(root)
    return root / "ro-crate-metadata.json"


def _one(items: list[Any]) -> Any:
    """A single value for a one-element list (RO-Crate 1.1 recommends it), else the list."""
    return items[0] if len(items) == 1 else items


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
