"""De-identify DICOM for a blinded study and copy series under opaque ids.

Follows the DICOM PS3.15 Annex E *Basic Application Level Confidentiality Profile* for the
attributes a reader study of MR series carries: patient identity replaced by an opaque id;
birth date, sex, age and other patient data removed; every date, time and date-time emptied;
institution, physicians, operators, accession number, device serial number and station name
removed; descriptions and protocol names replaced by neutral text; private tags, overlays and
curves removed; instance UIDs replaced by fresh ones through a shared map so the references
between files stay consistent. Beyond the profile, attributes that would tell the arms apart
(SeriesNumber, SoftwareVersions, derivation text) are neutralised too. Pixel data are copied as
they are: burned-in annotations are not detected.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from studies.dicom_series import SeriesInfo
from studies.errors import StudyError

#: Written to DeidentificationMethod (0012,0063) (VR LO: at most 64 characters).
DEIDENTIFICATION_METHOD = "PS3.15 E.1 Basic Profile (blindreader); UIDs replaced"

#: Standard UIDs (SOP classes, transfer syntaxes, coding schemes) are kept; all others replaced.
_STANDARD_UID_ROOT = "1.2.840.10008."

#: Neutral text for the descriptive attributes (the same for every arm).
NEUTRAL_TEXT = {
    "StudyDescription": "Blinded study",
    "SeriesDescription": "Blinded series",
    "ProtocolName": "Blinded",
}

#: Attributes removed (PS3.15 action X, or X/Z/D where removal is allowed), by keyword.
REMOVED = frozenset(
    {
        # patient
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientBirthName",
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientMotherBirthName",
        "PatientReligiousPreference",
        "PatientComments",
        "PatientInsurancePlanCodeSequence",
        "PatientState",
        "PatientSexNeutered",
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "IssuerOfPatientID",
        "MilitaryRank",
        "BranchOfService",
        "EthnicGroup",
        "Occupation",
        "AdditionalPatientHistory",
        "MedicalRecordLocator",
        "MedicalAlerts",
        "Allergies",
        "CountryOfResidence",
        "RegionOfResidence",
        "SmokingStatus",
        "PregnancyStatus",
        "LastMenstrualDate",
        "ResponsiblePerson",
        "ResponsibleOrganization",
        # institution, people, devices
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionCodeSequence",
        "InstitutionalDepartmentName",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "ReferringPhysicianIdentificationSequence",
        "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence",
        "PerformingPhysicianName",
        "PerformingPhysicianIdentificationSequence",
        "NameOfPhysiciansReadingStudy",
        "PhysiciansReadingStudyIdentificationSequence",
        "OperatorsName",
        "OperatorIdentificationSequence",
        "RequestingPhysician",
        "ScheduledPerformingPhysicianName",
        "ContentCreatorName",
        "DeviceSerialNumber",
        "StationName",
        "DeviceUID",
        # request / procedure
        "RequestAttributesSequence",
        "RequestedProcedureDescription",
        "RequestedProcedureID",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepID",
        "PerformedProcedureStepDescription",
        "PerformedProcedureStepID",
        "ReferencedPerformedProcedureStepSequence",
        "ReferencedStudySequence",
        "ReferencedPatientSequence",
        "AdmissionID",
        "AdmittingDiagnosesDescription",
        "ReasonForStudy",
        "RequestedContrastAgent",
        "StudyComments",
        "ImageComments",
        "AcquisitionComments",
        "DerivationDescription",
        "FrameComments",
        "TextComments",
        "AcquisitionDeviceProcessingDescription",
        "TimezoneOffsetFromUTC",
        "CurrentPatientLocation",
        "PatientInstitutionResidence",
        "ScheduledPatientInstitutionResidence",
        "PatientTransportArrangements",
        "PatientPrimaryLanguageCodeSequence",
        "PatientTelecomInformation",
        "PatientBirthDateInAlternativeCalendar",
        "PatientDeathDateInAlternativeCalendar",
        "SpecialNeeds",
        "VisitComments",
        "PerformedLocation",
        "ScheduledStudyLocation",
        "ScheduledStudyLocationAETitle",
        "ScheduledStationName",
        "ScheduledStationAETitle",
        "PerformedStationName",
        "PerformedStationAETitle",
        "RequestedProcedureLocation",
        "RequestedProcedureComments",
        "ReasonForTheRequestedProcedure",
        "ImagingServiceRequestComments",
        "FillerOrderNumberImagingServiceRequest",
        "PlacerOrderNumberImagingServiceRequest",
        "OrderEntererLocation",
        "OrderCallbackPhoneNumber",
        "ServiceEpisodeID",
        "ServiceEpisodeDescription",
        "IssuerOfAdmissionIDSequence",
        "DischargeDiagnosisDescription",
        "ProcedureCodeSequence",
        "StudyIDIssuer",
        "PersonAddress",
        "PersonTelephoneNumbers",
        "PersonTelecomInformation",
        "ResponsiblePersonRole",
        "ConsultingPhysicianName",
        "ConsultingPhysicianIdentificationSequence",
        "InterpretationRecorder",
        "InterpretationTranscriber",
        "InterpretationAuthor",
        "InterpretationApproverSequence",
        "TextValue",
        "ContentSequence",
        "AcquisitionContextSequence",
        "GraphicAnnotationSequence",
        "ReferencedPatientAliasSequence",
        # earlier values of changed attributes, and signatures over the original content
        "ModifiedAttributesSequence",
        "OriginalAttributesSequence",
        "DigitalSignaturesSequence",
        # beyond the profile: these can tell the arms apart
        "SoftwareVersions",
    }
)

#: Attributes emptied (PS3.15 action Z: present, zero length).
EMPTIED = frozenset({"AccessionNumber", "ReferringPhysicianName", "StudyID"})

_DATE_TIME_VRS = frozenset({"DA", "DT", "TM"})


def deidentify_dataset(
    ds: Dataset, *, opaque_patient_id: str, uid_map: MutableMapping[str, str]
) -> None:
    """De-identify a dataset in place.

    Parameters
    ----------
    ds
        The dataset (its ``file_meta`` is updated to the new SOPInstanceUID).
    opaque_patient_id
        Written to PatientName and PatientID.
    uid_map
        Old UID -> new UID; filled as new UIDs are made. Share one map across all series of a
        study so that files of one study/series/frame of reference stay linked.
    """
    _clean(ds, uid_map)
    ds.PatientName = opaque_patient_id
    ds.PatientID = opaque_patient_id
    for keyword, text in NEUTRAL_TEXT.items():
        setattr(ds, keyword, text)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    if "SeriesNumber" in ds:
        ds.SeriesNumber = 1
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _clean(ds: Dataset, uid_map: MutableMapping[str, str]) -> None:
    for elem in list(ds):
        if elem.tag.is_private:
            del ds[elem.tag]
            continue
        group = elem.tag.group
        if 0x6000 <= group <= 0x60FF or 0x5000 <= group <= 0x50FF or group == 0x4000:
            del ds[elem.tag]  # overlays (may hold annotations), curves, text comments
            continue
        keyword = elem.keyword
        if keyword in REMOVED:
            del ds[elem.tag]
        elif keyword in EMPTIED or elem.VR in _DATE_TIME_VRS or elem.VR == "PN":
            elem.value = ""
        elif elem.VR == "UI":
            elem.value = _map_uids(elem.value, uid_map)
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, uid_map)


def _map_uids(value: object, uid_map: MutableMapping[str, str]) -> object:
    if value is None or value == "":
        return value
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [_map_uid(str(v), uid_map) for v in value]  # type: ignore[attr-defined]
    return _map_uid(str(value), uid_map)


def _map_uid(uid: str, uid_map: MutableMapping[str, str]) -> str:
    if not uid or uid.startswith(_STANDARD_UID_ROOT):
        return uid
    if uid not in uid_map:
        uid_map[uid] = generate_uid()
    return uid_map[uid]


def blind_series(
    src: SeriesInfo,
    dst_dir: Path,
    *,
    opaque_series_id: str,
    opaque_patient_id: str,
    uid_map: MutableMapping[str, str],
) -> list[Path]:
    """Write de-identified copies of a series under opaque file names (0001.dcm, ...).

    Parameters
    ----------
    src
        The series to copy (files in slice order, from :func:`studies.dicom_series.read_series`).
    dst_dir
        The destination folder (created if needed; existing files of the same names are
        replaced). Each file is written to a temporary name and renamed.
    opaque_series_id
        Written to ClinicalTrialSeriesID, so a file can be traced back through the study's key
        (descriptions stay neutral and identical across arms). Must not itself hint at the arm.
    opaque_patient_id
        Written to PatientName and PatientID.
    uid_map
        Shared old -> new UID map (see :func:`deidentify_dataset`).

    Returns
    -------
    list[Path]
        The written files, in slice order; InstanceNumber is renumbered 1..n in that order.

    Raises
    ------
    StudyError
        A source file cannot be read, or the destination cannot be written.
    """
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, source in enumerate(src.files, start=1):
        try:
            ds = pydicom.dcmread(source)
        except Exception as exc:  # pydicom raises many kinds for broken files
            raise StudyError(f"{source}: cannot read DICOM file ({exc})") from None
        deidentify_dataset(ds, opaque_patient_id=opaque_patient_id, uid_map=uid_map)
        ds.InstanceNumber = index
        ds.ClinicalTrialSeriesID = opaque_series_id
        target = dst_dir / f"{index:04d}.dcm"
        fd, tmp_name = tempfile.mkstemp(dir=dst_dir, prefix=".tmp-", suffix=".dcm")
        os.close(fd)
        try:
            pydicom.dcmwrite(tmp_name, ds, enforce_file_format=True)
            os.replace(tmp_name, target)
        except Exception as exc:
            Path(tmp_name).unlink(missing_ok=True)
            raise StudyError(f"{target}: cannot write de-identified copy ({exc})") from None
        written.append(target)
    return written


__all__ = [
    "DEIDENTIFICATION_METHOD",
    "EMPTIED",
    "NEUTRAL_TEXT",
    "REMOVED",
    "blind_series",
    "deidentify_dataset",
]
