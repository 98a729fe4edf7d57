import pytest

from dualuse.errors import DualUseError, TaxonomyError
from dualuse.taxonomy import CHPL_TIERS, parse_taxonomy

EXPECTED_IDS = (
    "uav aerospace integrated_circuits electronic_components radio_comms navigation optics_thermal computers "
    "fab_and_test_equipment machine_tools bearings earthmoving trucks_vehicles batteries aramid_fibre composites "
    "helmets body_armour energetics critical_minerals copper_wire arms_ammunition none"
).split()


def test_exact_category_ids(taxonomy):
    assert list(taxonomy.ids) == EXPECTED_IDS


def test_every_category_has_definition_risk_and_cues(taxonomy):
    for cat in taxonomy.categories.values():
        assert cat.definition
        assert cat.risk in ("high", "medium", "low", "none")
        if cat.id != "none":
            for lang in ("en", "ru", "zh"):
                assert cat.strong.get(lang), f"{cat.id} has no strong {lang} cues"


@pytest.mark.parametrize(
    "code, category",
    [
        ("880622", "uav"),
        ("8806", "uav"),
        ("880730", "aerospace"),
        ("8411", "aerospace"),
        ("840710", "aerospace"),
        ("840721", "none"),  # marine engines are not aero engines
        ("854231", "integrated_circuits"),
        ("853669", "electronic_components"),
        ("853610", "none"),  # fuses: 8536 is only partly listed
        ("850440", "electronic_components"),
        ("850410", "none"),
        ("851762", "radio_comms"),
        ("851713", "none"),  # smartphones
        ("852692", "navigation"),
        ("901380", "optics_thermal"),
        ("9004", "none"),
        ("847130", "computers"),
        ("903020", "fab_and_test_equipment"),
        ("8456", "machine_tools"),
        ("845961", "machine_tools"),
        ("8463", "machine_tools"),
        ("8464", "none"),
        ("848210", "bearings"),
        ("842952", "earthmoving"),
        ("843149", "earthmoving"),
        ("843131", "none"),  # lift parts
        ("870423", "trucks_vehicles"),
        ("870121", "trucks_vehicles"),
        ("870130", "none"),  # track-laying tractors are not road tractors
        ("870192", "none"),  # agricultural tractors
        ("870323", "none"),  # passenger cars
        ("850760", "batteries"),
        ("850780", "none"),
        ("540211", "aramid_fibre"),
        ("540245", "none"),
        ("681511", "composites"),
        ("701919", "composites"),
        ("650610", "helmets"),
        ("650500", "none"),
        ("360200", "energetics"),
        ("3604", "none"),  # fireworks
        ("811292", "critical_minerals"),
        ("740811", "copper_wire"),
        ("7404", "none"),  # copper scrap
        ("930630", "arms_ammunition"),
        ("9503", "none"),
        ("8542310000", "integrated_circuits"),
    ],
)
def test_longest_prefix_wins(taxonomy, code, category):
    assert taxonomy.category_for_hs(code) == category


def test_no_code_means_no_category(taxonomy):
    assert taxonomy.category_for_hs(None) is None
    assert taxonomy.category_for_hs("") is None


def test_chpl_tiers(taxonomy):
    assert len(taxonomy.chpl) == 50
    assert set(taxonomy.chpl.values()) == set(CHPL_TIERS)
    assert taxonomy.chpl_tier("8542310000") == "TIER_1"
    assert taxonomy.chpl_tier("851762") == "TIER_2"
    assert taxonomy.chpl_tier("880730") == "TIER_3_B"
    assert taxonomy.chpl_tier("847180") == "TIER_4_A"
    assert taxonomy.chpl_tier("845710") == "TIER_4_B"
    assert taxonomy.chpl_tier("8542") is None  # needs six digits
    assert taxonomy.chpl_tier("880622") is None  # drones are not on the list by HS-6
    assert taxonomy.chpl_tier(None) is None


def test_unknown_category_error_lists_ids(taxonomy):
    with pytest.raises(TaxonomyError, match="expected one of"):
        taxonomy["drones"]
    assert issubclass(TaxonomyError, DualUseError)


def test_malformed_taxonomy_is_rejected():
    chpl = "hs6,tier\n854231,TIER_1\n"
    with pytest.raises(TaxonomyError, match="none"):
        parse_taxonomy('[[category]]\nid = "uav"\n', chpl)
    with pytest.raises(TaxonomyError, match="bad HS prefix"):
        parse_taxonomy('[[category]]\nid = "a"\nhs_prefixes = ["88x6"]\n[[category]]\nid = "none"\n', chpl)
    with pytest.raises(TaxonomyError, match="claimed by both"):
        parse_taxonomy(
            '[[category]]\nid = "a"\nhs_prefixes = ["8806"]\n[[category]]\nid = "b"\nhs_prefixes = ["8806"]\n'
            '[[category]]\nid = "none"\n',
            chpl,
        )
    with pytest.raises(TaxonomyError, match="tier"):
        parse_taxonomy('[[category]]\nid = "none"\n', "hs6,tier\n854231,TIER_9\n")
    with pytest.raises(TaxonomyError, match="not valid TOML"):
        parse_taxonomy("[[category", chpl)


def test_ranges_expand():
    tax = parse_taxonomy(
        '[[category]]\nid = "mt"\nhs_prefixes = ["8456-8458"]\n[[category]]\nid = "none"\n', "hs6,tier\n"
    )
    assert tax["mt"].hs_prefixes == ("8456", "8457", "8458")
