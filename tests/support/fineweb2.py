"""Real pages for the fineweb2 tests: records of ../shared/data/crawl/zh-web-A.warc.gz, and crawls made from them
(a re-posted article with another header, a page served in Big5-HKSCS) written as WARC files."""
import gzip
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from tests.support.warc import write_warc

ZH_WEB = "crawl/zh-web-A.warc.gz"
ARTICLE_URL = "https://news.sina.com.cn/c/2024-05-10/doc-inausehc2630922.shtml"  # a news article FineWeb-2 keeps
TRADITIONAL_URL_PART = "hk.finance.yahoo.com/news/"  # a traditional-script article from Hong Kong
BIG5_MARK = "4月以嚟嘅升浪可能會結束"  # a Cantonese sentence of that article (HKSCS characters)


def read_records(path: Path) -> list[tuple[str, bytes, str]]:
    """(url, payload bytes, Content-Type) of every response record."""
    records = []
    with open(path, "rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type != "response":
                continue
            content_type = record.http_headers.get_header("Content-Type") if record.http_headers else "text/html"
            records.append((record.rec_headers.get_header("WARC-Target-URI"), record.content_stream().read(),
                            content_type))
    return records


def reposted(html: str) -> str:
    """The same article as another site re-posts it: its own title and credit line, an advertisement in the middle,
    corner brackets for quotation marks (a common edit when re-posting)."""
    html = html.replace("<title>", "<title>【转载】", 1)
    body = html.index(">", html.index("<body")) + 1
    html = html[:body] + "<p>本文转载自新浪新闻，版权归原作者所有，如有侵权请联系删除。编辑：李明</p>" + html[body:]
    middle = html.index("</p>", len(html) // 2) + 4
    html = html[:middle] + "<p>【广告】扫码关注我们的公众号，每天推送最新资讯！</p>" + html[middle:]
    return html.replace("“", "「").replace("”", "」")


def big5_page(html: str) -> bytes:
    """The Hong Kong article served as Big5 the way Hong Kong sites do: in Big5-HKSCS, whose Cantonese characters
    (嘅 啲 嚟) neither Python's strict `big5` codec nor CP950 decodes."""
    html = html.replace('charset="utf-8"', 'charset="big5"').replace("charset=utf-8", "charset=big5")
    return html.encode("big5hkscs", errors="ignore")  # (the 2 characters it has no code for are left out)


def planted_crawl(shared_data: Path, path: Path) -> dict:
    """zh-web-A plus a re-post of a real article under another URL and a traditional page served as Big5."""
    records = read_records(shared_data / ZH_WEB)
    article = next(payload for url, payload, _ in records if url == ARTICLE_URL)
    traditional_url, traditional = next((url, payload) for url, payload, _ in records if TRADITIONAL_URL_PART in url)
    repost_url = "http://www.example-news.cn/2024/0511/repost-2630922.html"
    big5_url = "http://www.example-hk.com.hk/finance/big5-article.html"
    records += [(repost_url, reposted(article.decode("utf-8")).encode("utf-8"), "text/html; charset=utf-8"),
                (big5_url, big5_page(traditional.decode("utf-8")), "text/html; charset=big5")]
    write_warc(path, records)
    return {"original": ARTICLE_URL, "repost": repost_url, "big5": big5_url, "records": len(records)}


def read_jsonl_gz(folder: Path) -> list[dict]:
    import json

    return [json.loads(line) for path in sorted(Path(folder).rglob("*.jsonl.gz"))
            for line in gzip.open(path, "rt", encoding="utf-8")]
