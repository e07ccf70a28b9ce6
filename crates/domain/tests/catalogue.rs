//! The chemical catalogue: the bundled sample against the reference CSV
//! (`tests/vectors/chemicals.csv`, a copy of the project's domain data), and
//! rejection of invalid catalogue files.

use std::path::Path;

use hazchem_domain::{
    CasNumber, Catalogue, CatalogueError, IdentifierKind, Rule, SAMPLE_CATALOGUE_TOML, UnNumber,
};

const LIST_COLUMNS: [&str; 3] = ["highly_toxic", "explosive_precursor", "key_supervised"];

fn cas(s: &str) -> CasNumber {
    CasNumber::parse(s).unwrap()
}

#[test]
fn sample_loads() {
    let cat = Catalogue::sample();
    assert_eq!(cat.version(), "sample-2026.1");
    assert!(cat.source().contains("not the official"));
    assert_eq!(cat.len(), 40);
    assert_eq!(cat.chemicals().len(), 40);
    assert!(!cat.is_empty());
    let keys: Vec<&str> = cat.lists().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["explosive_precursor", "highly_toxic", "key_supervised"]
    );
    assert_eq!(cat.list_name("highly_toxic"), Some("剧毒化学品"));
    assert_eq!(
        cat.list_name("explosive_precursor"),
        Some("易制爆危险化学品")
    );
    assert_eq!(
        cat.list_name("key_supervised"),
        Some("重点监管的危险化学品")
    );
    assert_eq!(cat.list_name("nonexistent"), None);
}

#[test]
fn load_reads_the_data_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/catalogue-sample.toml");
    let cat = Catalogue::load(&path).unwrap();
    assert_eq!(cat.version(), Catalogue::sample().version());
    assert_eq!(cat.chemicals(), Catalogue::sample().chemicals());
    let missing = Catalogue::load(path.with_file_name("missing.toml")).unwrap_err();
    assert!(matches!(missing, CatalogueError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("missing.toml"), "{missing}");
}

#[test]
fn sample_matches_the_reference_csv_row_by_row() {
    let cat = Catalogue::sample();
    let mut reader = csv::Reader::from_reader(include_str!("vectors/chemicals.csv").as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let mut rows = 0;
    for (i, row) in reader.records().enumerate() {
        let row = row.unwrap();
        rows += 1;
        let number = cas(&row[column("cas")]);
        let chem = cat
            .by_cas(&number)
            .unwrap_or_else(|| panic!("{number} missing"));
        assert_eq!(&cat.chemicals()[i], chem, "file order follows the CSV");
        let un = UnNumber::parse(&row[column("un")]).unwrap();
        assert_eq!(chem.un(), Some(&un));
        assert_eq!(chem.name_zh(), &row[column("name_zh")]);
        assert_eq!(chem.name_en(), Some(&row[column("name_en")]));
        assert_eq!(
            chem.transport_class(),
            Some(&row[column("transport_class")])
        );
        assert!(cat.by_un(&un).any(|c| c.cas() == &number));
        for list in LIST_COLUMNS {
            let flag = &row[column(list)];
            assert!(flag == "0" || flag == "1");
            assert_eq!(cat.is_listed(&number, list), flag == "1", "{number} {list}");
            assert_eq!(chem.is_on(list), flag == "1");
        }
    }
    assert_eq!(rows, 40);
    assert_eq!(rows, cat.len());
}

#[test]
fn list_membership_examples() {
    let cat = Catalogue::sample();
    let phosgene = cas("75-44-5");
    assert_eq!(cat.by_cas(&phosgene).unwrap().name_en(), Some("phosgene"));
    assert!(cat.is_listed(&phosgene, "highly_toxic"));
    assert!(cat.is_listed(&phosgene, "key_supervised"));
    assert!(!cat.is_listed(&phosgene, "explosive_precursor"));

    let ammonium_nitrate = cas("6484-52-2");
    assert!(cat.is_listed(&ammonium_nitrate, "explosive_precursor"));
    assert!(!cat.is_listed(&ammonium_nitrate, "highly_toxic"));

    let potassium_cyanide = cas("151-50-8");
    assert!(cat.is_listed(&potassium_cyanide, "highly_toxic"));
    assert!(!cat.is_listed(&potassium_cyanide, "key_supervised"));

    let ethanol = cas("64-17-5");
    assert!(cat.by_cas(&ethanol).unwrap().lists().is_empty());

    // Unknown chemical, undeclared list: not listed.
    assert!(!cat.is_listed(&cas("7732-18-5"), "highly_toxic"));
    assert!(!cat.is_listed(&phosgene, "no_such_list"));

    let toxic: Vec<&str> = cat
        .members("highly_toxic")
        .map(|c| c.name_en().unwrap())
        .collect();
    assert_eq!(
        toxic,
        [
            "phosgene",
            "hydrogen cyanide",
            "sodium cyanide",
            "potassium cyanide"
        ]
    );
    assert_eq!(cat.members("explosive_precursor").count(), 10);

    let ammonia: Vec<_> = cat.by_un(&UnNumber::parse("UN1005").unwrap()).collect();
    assert_eq!(ammonia.len(), 1);
    assert_eq!(ammonia[0].name_zh(), "氨");
    assert_eq!(cat.by_un(&UnNumber::parse("UN9999").unwrap()).count(), 0);
}

const HEADER: &str = r#"version = "test-1"
source = "unit test"
[lists]
alpha = "甲名单"
beta = "乙名单"
"#;

fn load(entries: &str) -> Result<Catalogue, CatalogueError> {
    Catalogue::from_toml_str(&format!("{HEADER}{entries}"))
}

#[test]
fn minimal_catalogue_with_optional_fields_omitted() {
    let cat = load(
        r#"
[[chemicals]]
cas = "7732-18-5"
name_zh = "水"
"#,
    )
    .unwrap();
    let water = cat.by_cas(&cas("7732-18-5")).unwrap();
    assert_eq!(water.un(), None);
    assert_eq!(water.name_en(), None);
    assert_eq!(water.transport_class(), None);
    assert!(water.lists().is_empty());
    assert_eq!(cat.lists().len(), 2);
}

#[test]
fn undeclared_list_is_rejected_naming_the_entry() {
    let err = load(
        r#"
[[chemicals]]
cas = "7664-41-7"
un = "UN1005"
name_zh = "氨"
lists = ["alpha"]

[[chemicals]]
cas = "7782-50-5"
un = "UN1017"
name_zh = "氯"
lists = ["beta", "gamma"]
"#,
    )
    .unwrap_err();
    let CatalogueError::UndeclaredList { at, list, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(list, "gamma");
    assert_eq!(at.index, 2);
    assert_eq!(at.name_zh, "氯");
    assert_eq!(at.line, Some(17));
    let message = err.to_string();
    assert_eq!(
        message,
        "chemicals entry 2 (氯) at line 17: list \"gamma\" is not declared in [lists] \
         (declared: alpha, beta)"
    );
}

#[test]
fn bad_cas_is_rejected_naming_the_entry() {
    let err = load(
        r#"
[[chemicals]]
cas = "7664-41-8"
name_zh = "氨"
"#,
    )
    .unwrap_err();
    let CatalogueError::Identifier { at, source } = &err else {
        panic!("{err}");
    };
    assert_eq!(
        (source.kind, source.rule),
        (IdentifierKind::Cas, Rule::CheckCharacter)
    );
    assert_eq!((at.index, at.line), (1, Some(8)));
    assert_eq!(
        err.to_string(),
        "chemicals entry 1 (氨) at line 8: CAS number \"7664-41-8\": wrong check character: \
         expected '7', found '8'"
    );
}

#[test]
fn bad_un_is_rejected_naming_the_entry() {
    let err = load(
        r#"
[[chemicals]]
cas = "7664-41-7"
un = "UN105"
name_zh = "氨"
"#,
    )
    .unwrap_err();
    let CatalogueError::Identifier { at, source } = &err else {
        panic!("{err}");
    };
    assert_eq!(source.kind, IdentifierKind::Un);
    assert_eq!((at.index, at.line), (1, Some(9)));
    assert!(err.to_string().contains("(氨)"), "{err}");
}

#[test]
fn duplicate_cas_is_rejected_naming_both_entries() {
    let err = load(
        r#"
[[chemicals]]
cas = "7664-41-7"
name_zh = "氨"

[[chemicals]]
cas = "7732-18-5"
name_zh = "水"

[[chemicals]]
cas = "7664-41-7"
name_zh = "液氨"
"#,
    )
    .unwrap_err();
    let CatalogueError::DuplicateCas {
        at,
        cas,
        first_index,
        first_name_zh,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((at.index, at.line), (3, Some(16)));
    assert_eq!(cas, "7664-41-7");
    assert_eq!((*first_index, first_name_zh.as_str()), (1, "氨"));
    assert_eq!(
        err.to_string(),
        "chemicals entry 3 (液氨) at line 16: duplicate CAS number 7664-41-7, already used by \
         chemicals entry 1 (氨)"
    );
}

#[test]
fn shared_un_numbers_are_allowed() {
    let cat = load(
        r#"
[[chemicals]]
cas = "7664-41-7"
un = "UN1005"
name_zh = "氨"

[[chemicals]]
cas = "7732-18-5"
un = "UN1005"
name_zh = "水"
"#,
    )
    .unwrap();
    let names: Vec<&str> = cat
        .by_un(&UnNumber::parse("UN1005").unwrap())
        .map(|c| c.name_zh())
        .collect();
    assert_eq!(names, ["氨", "水"]);
}

#[test]
fn other_invalid_content_is_rejected() {
    let cases = [
        // A misspelt field must not silently drop list membership.
        (
            "[[chemicals]]\ncas = \"7664-41-7\"\nname_zh = \"氨\"\nlist = [\"alpha\"]\n",
            "list",
        ),
        (
            "[[chemicals]]\ncas = \"7664-41-7\"\nname_zh = \"  \"\n",
            "name_zh",
        ),
        (
            "[[chemicals]]\ncas = \"7664-41-7\"\nname_zh = \"氨\"\nname_en = \"\"\n",
            "name_en",
        ),
        (
            "[[chemicals]]\ncas = \"7664-41-7\"\nname_zh = \"氨\"\ntransport_class = \"2.4\"\n",
            "2.4",
        ),
        (
            "[[chemicals]]\ncas = \"7664-41-7\"\nname_zh = \"氨\"\nlists = [\"alpha\", \"alpha\"]\n",
            "named twice",
        ),
        ("[[chemicals]]\nun = \"UN1005\"\nname_zh = \"氨\"\n", "cas"),
        ("[[chemicals]]\ncas = 7664\nname_zh = \"氨\"\n", "cas"),
    ];
    for (entries, needle) in cases {
        let err = load(entries).unwrap_err();
        assert!(err.to_string().contains(needle), "{entries}: {err}");
    }
    let no_version = Catalogue::from_toml_str("version = \"\"\nsource = \"x\"\n[lists]\n");
    assert!(matches!(no_version, Err(CatalogueError::EmptyField { .. })));
    let no_lists_table = Catalogue::from_toml_str("version = \"1\"\nsource = \"x\"\n");
    assert!(matches!(no_lists_table, Err(CatalogueError::Toml { .. })));
    let bad_list_name =
        Catalogue::from_toml_str("version = \"1\"\nsource = \"x\"\n[lists]\na = \"\"\n");
    assert!(matches!(
        bad_list_name,
        Err(CatalogueError::EmptyField { .. })
    ));
    let not_toml = Catalogue::from_toml_str("version = ").unwrap_err();
    assert!(matches!(not_toml, CatalogueError::Toml { .. }));
    assert!(not_toml.to_string().contains("line 1"), "{not_toml}");
}

#[test]
fn empty_catalogue_is_valid() {
    let cat = Catalogue::from_toml_str("version = \"1\"\nsource = \"x\"\n[lists]\n").unwrap();
    assert!(cat.is_empty());
    assert!(cat.lists().is_empty());
}

/// No list is hard-coded: the library source names neither a key nor a
/// display name of any list declared in the sample catalogue.
#[test]
fn library_source_names_no_list() {
    let cat = Catalogue::from_toml_str(SAMPLE_CATALOGUE_TOML).unwrap();
    let mut needles: Vec<&str> = Vec::new();
    for (key, name) in cat.lists() {
        needles.push(key);
        needles.push(name);
    }
    // The short Chinese names too (剧毒, 易制爆, 重点监管).
    let short: Vec<String> = cat
        .lists()
        .values()
        .map(|n| {
            n.trim_end_matches("危险化学品")
                .trim_end_matches("化学品")
                .trim_end_matches('的')
                .to_owned()
        })
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests inside src/ may name lists; only code before them counts.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for needle in needles
            .iter()
            .copied()
            .chain(short.iter().map(String::as_str))
        {
            assert!(
                !code.contains(needle),
                "{} names the list {needle:?}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 8);
}
