"""index.sentences: a provision's sentences for sentence-level evidence."""
from index.sentences import MAX_SENTENCES, MIN_CHARS, split_sentences


def test_splits_after_sentence_marks_and_joins_a_short_heading_to_the_next_sentence():
    text = ("18．强化医疗卫生合作。加强重大疾病防治协作，联合培养全科医生、紧缺专科型医生。"
            "加强与广东省相关机构合作，实现异地就医即时结算并报销医保费用。")
    parts = split_sentences(text)
    assert parts == ["18．强化医疗卫生合作。加强重大疾病防治协作，联合培养全科医生、紧缺专科型医生。",
                     "加强与广东省相关机构合作，实现异地就医即时结算并报销医保费用。"]
    assert "".join(parts) == text


def test_every_character_is_kept_and_no_sentence_is_shorter_than_the_minimum_unless_alone():
    text = "第一条 总则。\n支持香港。推动区域医疗中心建设；落实检查结果互认！短句？\n\n最后一句没有句号"
    parts = split_sentences(text)
    assert "".join(parts) == text.replace("\n", "")
    assert all(len(p) >= MIN_CHARS for p in parts[:-1])
    assert split_sentences("短") == ["短"]
    assert split_sentences("  \n ") == []


def test_a_long_list_is_bounded():
    text = "".join(f"第{i}项内容比较长的一句话要写够字数。" for i in range(100))
    parts = split_sentences(text)
    assert len(parts) == MAX_SENTENCES
    assert "".join(parts) == text
