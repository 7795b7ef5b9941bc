//! The text of the work-list benchmark's tickets: subjects and bodies in Chinese and English
//! from templates per category, with variable parts (order numbers, products, cities, amounts,
//! dates) so that search terms have realistic frequencies: a complaint word like 退款 is in
//! several percent of tickets, a product like "router" in about one percent, an order number in
//! one ticket. Deterministic: everything is drawn from [`Rng`].

/// A small, fast, seedable generator (SplitMix64): the benchmark's data must be the same for
/// the same `--seed`, and needs no cryptographic quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for item `i` of stream `seed`: items can be drawn in any order or thread.
    pub fn for_item(seed: u64, i: u64) -> Rng {
        let mut r = Rng(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of `items` with probability proportional to its weight.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (item, w) in items {
            if x < u64::from(*w) {
                return *item;
            }
            x -= u64::from(*w);
        }
        items[items.len() - 1].0
    }
}

/// A subject and body template; `{order}`, `{product}`, `{city}`, `{amount}`, `{date}` are
/// filled in.
type Template = (&'static str, &'static str);

const ZH_INQUIRY: &[Template] = &[
    (
        "查询订单{order}的物流进度",
        "我在{date}下单的{product}（订单号{order}）到现在还没有发货，请问什么时候能送到{city}？",
    ),
    (
        "{product}怎么设置",
        "请问{product}怎么设置？说明书上写得不清楚，我试了好几次都不行。",
    ),
    (
        "咨询{product}的价格",
        "你们的{product}现在多少钱？{city}有没有线下门店可以看样品？",
    ),
    (
        "发票怎么开",
        "订单{order}需要开增值税专用发票，请问在哪里申请？抬头是公司名称。",
    ),
    (
        "套餐变更咨询",
        "我现在用的是{amount}元的套餐，想换成流量更多的，请问怎么办理？",
    ),
    ("会员积分查询", "请问我的会员积分还有多少？能不能兑换{product}？"),
    (
        "退货政策咨询",
        "买的{product}不太合适，还没拆封，请问七天内可以退货吗？退款多久到账？",
    ),
    (
        "安装预约",
        "我在{city}，新买的{product}需要上门安装，请问最快什么时候可以安排师傅？",
    ),
    ("保修期多久", "{product}的保修期是多久？订单号{order}，{date}买的。"),
    ("营业时间", "请问{city}的营业厅几点关门？周末营业吗？"),
    (
        "如何修改收货地址",
        "订单{order}还没发货，想把收货地址改到{city}，怎么操作？",
    ),
    (
        "优惠活动咨询",
        "看到你们有{product}的优惠活动，请问到什么时候结束？能和优惠券一起用吗？",
    ),
    ("账户实名认证", "实名认证一直显示审核中，已经提交三天了，请问需要多久？"),
    (
        "退款进度查询",
        "我申请的退款{amount}元到现在还没到账，订单号{order}，请帮忙查一下进度。",
    ),
    ("宽带办理", "想在{city}办理宽带，请问有哪些套餐？安装费多少？"),
    ("以旧换新", "旧的{product}可以以旧换新吗？能抵多少钱？"),
    ("配送范围", "{city}郊区可以送货上门吗？{product}比较重。"),
    ("密码重置", "忘记了账户密码，手机号也换了，请问怎么找回？"),
];

const ZH_FAULT: &[Template] = &[
    (
        "{product}无法开机",
        "{date}买的{product}今天突然无法开机，充电也没有反应，订单号{order}。",
    ),
    (
        "家里断网了",
        "从昨天晚上开始家里宽带就断网了，光猫的灯一直闪红色，重启{product}也没用，地址在{city}。",
    ),
    ("App登录不上", "App一直提示登录失败，验证码收不到，换了手机也一样。"),
    (
        "付款失败",
        "在App上买{product}付款失败，但是银行卡已经扣了{amount}元，订单号{order}。",
    ),
    (
        "网速很慢",
        "最近网速特别慢，测速只有几兆，{product}已经重启过好几次了。",
    ),
    (
        "{product}频繁死机",
        "{product}用一会儿就卡死，必须拔电源才能恢复，已经好几天了。",
    ),
    ("信号很差", "我在{city}，家里手机信号一直很差，打电话经常断线。"),
    (
        "页面报错",
        "打开订单页面一直报错，显示系统繁忙，订单号{order}看不到详情。",
    ),
    ("{product}充不进电", "新买的{product}充不进电，换了充电器也不行。"),
    ("电视盒子没有画面", "电视盒子开机后没有画面，只有声音，遥控器也没反应。"),
    (
        "路由器反复重启",
        "路由器每隔十几分钟就自动重启一次，家里的网络一直断断续续。",
    ),
    (
        "账单数据错误",
        "这个月的账单显示用了{amount}元流量费，但我根本没有用那么多，数据肯定有错误。",
    ),
    ("无法收到短信", "手机收不到任何短信验证码，影响登录银行和App。"),
    ("{product}漏水", "{product}安装后一直漏水，师傅来看过一次还是没修好。"),
    ("扫码支付失败", "在{city}门店扫码支付一直失败，提示网络异常。"),
    (
        "WiFi连不上",
        "家里的WiFi突然连不上了，{product}显示已连接但是打不开网页。",
    ),
];

const ZH_COMPLAINT: &[Template] = &[
    (
        "要求退款",
        "{product}质量太差了，用了不到一周就坏了，我要求全额退款{amount}元，订单号{order}。",
    ),
    (
        "客服态度差",
        "昨天打电话咨询，客服态度非常差，问题没解决还挂我电话，我要投诉。",
    ),
    (
        "重复扣款",
        "同一个订单{order}被扣了两次款，一共{amount}元，请尽快退款。",
    ),
    ("发货太慢", "下单十天了{product}还没发货，一直说在处理，太慢了。"),
    (
        "维修师傅迟到",
        "约好上午上门维修，师傅下午才来，还没修好，浪费了一整天。",
    ),
    ("乱收费", "没有办理任何业务却被扣了{amount}元，这是乱收费，请给个说法。"),
    (
        "退款一直没到账",
        "退款申请已经通过半个月了，{amount}元一直没有到账，催了好几次都没用。",
    ),
    (
        "收到的商品是坏的",
        "收到的{product}外包装破损，机器也不能用，要求换货或者退款。",
    ),
    ("虚假宣传", "宣传说{product}可以用三年，结果半年就坏了，这是虚假宣传。"),
    (
        "多次投诉无人处理",
        "这已经是我第三次投诉了，问题一直没有人处理，订单号{order}。",
    ),
    (
        "套餐被私自更改",
        "我的套餐被私自改成了{amount}元的，我从来没有同意过，要求恢复并退还差价。",
    ),
    (
        "快递员态度恶劣",
        "快递员把{product}直接扔在门口，还骂人，{city}这个网点需要整改。",
    ),
    ("赔偿要求", "因为你们断网三天，影响了我的工作，要求赔偿。"),
    ("发票开错了", "发票抬头开错了，申请重开一个月了还没处理，太不负责任了。"),
    ("积分被清零", "我的会员积分突然被清零了，没有任何通知，要求恢复。"),
];

const ZH_SUGGESTION: &[Template] = &[
    (
        "建议增加夜间客服",
        "希望能增加夜间人工客服，晚上遇到问题只能等到第二天。",
    ),
    ("App改进建议", "建议App增加订单一键退款功能，现在流程太复杂了。"),
    ("希望{city}开设门店", "希望在{city}开设线下门店，方便体验{product}。"),
    ("包装建议", "{product}的包装太浪费了，建议使用环保包装。"),
    ("增加支付方式", "建议增加更多支付方式，比如数字人民币。"),
    ("说明书建议", "{product}的说明书太简单了，建议增加视频教程。"),
    ("会员权益建议", "希望会员积分可以兑换更多商品，比如{product}。"),
    ("配送时间建议", "建议增加晚上配送时间段，白天上班不在家。"),
];

const ZH_OTHER: &[Template] = &[
    (
        "合作咨询",
        "我们是{city}的一家公司，想和贵公司洽谈渠道合作，请问联系谁？",
    ),
    ("求职", "请问贵公司{city}分公司还在招聘客服吗？"),
    ("感谢", "感谢昨天的客服小姐姐，帮我解决了{product}的问题，服务很好。"),
    ("", "你好"),
    ("测试", "测试消息，请忽略。"),
    ("广告推广", "专业推广服务，提升店铺销量，欢迎咨询。"),
    ("媒体采访", "我是{city}日报的记者，想就{product}行业做一个采访。"),
    ("问卷调查", "收到满意度调查短信，请问是你们发的吗？"),
];

const EN_INQUIRY: &[Template] = &[
    (
        "Where is my order {order}?",
        "I ordered a {product} on {date} (order {order}) and it has not shipped yet. When will it arrive in {city}?",
    ),
    (
        "How do I set up my {product}",
        "The manual for the {product} is not clear. How do I set it up? I tried several times.",
    ),
    (
        "Price of the {product}",
        "How much is the {product} now? Is there a store in {city} where I can see one?",
    ),
    (
        "Invoice request",
        "I need a VAT invoice for order {order}. Where do I request it?",
    ),
    (
        "Change my plan",
        "I am on the {amount} plan and want more data. How do I change it?",
    ),
    (
        "Return policy",
        "The {product} does not suit me and is still sealed. Can I return it within 7 days? How long does the refund take?",
    ),
    (
        "Installation appointment",
        "I live in {city} and need someone to install my new {product}. What is the earliest date?",
    ),
    (
        "Warranty question",
        "How long is the warranty on the {product}? Order {order}, bought on {date}.",
    ),
    (
        "Opening hours",
        "When does your {city} store close? Are you open on weekends?",
    ),
    (
        "Change delivery address",
        "Order {order} has not shipped. Can I change the delivery address to {city}?",
    ),
    (
        "Refund status",
        "My refund of {amount} has not arrived yet, order {order}. Can you check?",
    ),
    (
        "Reset password",
        "I forgot my password and changed my phone number. How do I get back into my account?",
    ),
];

const EN_FAULT: &[Template] = &[
    (
        "{product} will not turn on",
        "The {product} I bought on {date} does not turn on any more, even when charging. Order {order}.",
    ),
    (
        "Internet down",
        "Our broadband has been down since last night. The modem light blinks red and restarting the {product} does not help. Address in {city}.",
    ),
    (
        "Cannot log in to the app",
        "The app keeps saying login failed and I never get the verification code.",
    ),
    (
        "Payment failed but I was charged",
        "Paying for a {product} in the app failed but my card was charged {amount}. Order {order}.",
    ),
    (
        "Very slow internet",
        "The connection has been very slow for days, speed tests show a few Mbps. I restarted the {product} many times.",
    ),
    (
        "Router keeps rebooting",
        "My router reboots every 15 minutes and the WiFi drops each time.",
    ),
    (
        "{product} freezes",
        "The {product} freezes after a few minutes and only unplugging it helps.",
    ),
    (
        "Error page",
        "The order page shows an error, system busy, and I cannot see order {order}.",
    ),
    (
        "{product} does not charge",
        "My new {product} does not charge, even with another charger.",
    ),
    (
        "Wrong bill",
        "This month's bill says {amount} of data charges. I did not use that much.",
    ),
    ("No SMS codes", "My phone receives no SMS verification codes at all."),
    (
        "WiFi connected but no internet",
        "The {product} says connected but no web page opens. The router was fine yesterday.",
    ),
];

const EN_COMPLAINT: &[Template] = &[
    (
        "I want a refund",
        "The {product} broke after less than a week. I want a full refund of {amount}, order {order}.",
    ),
    (
        "Rude agent",
        "The agent I spoke to yesterday was rude and hung up on me. I want to file a complaint.",
    ),
    (
        "Charged twice",
        "Order {order} was charged twice, {amount} in total. Please refund the duplicate.",
    ),
    (
        "Delivery far too slow",
        "Ten days and the {product} has still not shipped.",
    ),
    (
        "Technician late",
        "The technician came in the afternoon instead of the morning and did not fix anything.",
    ),
    (
        "Unauthorised charge",
        "I was charged {amount} for a service I never ordered.",
    ),
    (
        "Refund never arrived",
        "My refund was approved two weeks ago and the {amount} has not arrived.",
    ),
    (
        "Item arrived broken",
        "The {product} arrived with a broken box and does not work. I want a replacement or a refund.",
    ),
    (
        "Nobody answers my complaint",
        "This is my third complaint and nobody has handled it, order {order}.",
    ),
    (
        "Courier was rude",
        "The courier threw my {product} at the door and shouted. The {city} branch needs to fix this.",
    ),
];

const EN_SUGGESTION: &[Template] = &[
    (
        "Please add night support",
        "Please add live support at night. Problems at night wait until the next day.",
    ),
    (
        "App suggestion",
        "The app should have a one-tap refund button; the current flow is too long.",
    ),
    (
        "Open a store in {city}",
        "Please open a store in {city} so people can try the {product}.",
    ),
    (
        "Less packaging",
        "The {product} comes with far too much packaging. Please use recyclable boxes.",
    ),
    (
        "Video manuals",
        "The {product} manual is too short. Video tutorials would help.",
    ),
];

const EN_OTHER: &[Template] = &[
    (
        "Partnership",
        "We are a company in {city} interested in a reseller partnership. Whom should we contact?",
    ),
    (
        "Thank you",
        "Thanks to the agent who fixed my {product} problem yesterday, great service.",
    ),
    ("", "hello"),
    ("Test", "Test message, please ignore."),
    (
        "Press enquiry",
        "I am a reporter in {city} writing about the {product} market.",
    ),
];

const ZH_OPENINGS: &[&str] = &[
    "你好，",
    "您好，",
    "客服你好，",
    "",
    "",
    "麻烦帮我看一下，",
    "急！",
    "请问，",
    "在吗？",
];
const ZH_CLOSINGS: &[&str] = &[
    "谢谢。",
    "麻烦尽快处理。",
    "",
    "",
    "电话是预留的号码。",
    "等你们回复。",
    "谢谢！",
    "辛苦了。",
];
const EN_OPENINGS: &[&str] = &[
    "Hi, ",
    "Hello, ",
    "",
    "",
    "Dear support, ",
    "Urgent: ",
    "Good morning, ",
];
const EN_CLOSINGS: &[&str] = &[
    "Thanks.",
    "Please help.",
    "",
    "",
    "Thank you!",
    "Regards",
    "Please call me back.",
];

const ZH_PRODUCTS: &[&str] = &[
    "路由器",
    "光猫",
    "宽带",
    "手机",
    "平板",
    "电视盒子",
    "智能音箱",
    "会员卡",
    "流量包",
    "套餐",
    "充电器",
    "耳机",
    "冰箱",
    "洗衣机",
    "空调",
    "净水器",
    "扫地机器人",
    "智能手表",
    "蓝牙音箱",
    "移动电源",
    "机顶盒",
    "摄像头",
    "智能门锁",
    "电饭煲",
    "热水器",
    "显示器",
    "笔记本电脑",
    "打印机",
    "优惠券",
    "礼品卡",
];
const EN_PRODUCTS: &[&str] = &[
    "router",
    "modem",
    "broadband",
    "phone",
    "tablet",
    "TV box",
    "smart speaker",
    "membership card",
    "data plan",
    "charger",
    "headphones",
    "fridge",
    "washing machine",
    "air conditioner",
    "water purifier",
    "robot vacuum",
    "smartwatch",
    "power bank",
    "set-top box",
    "camera",
    "smart lock",
    "rice cooker",
    "water heater",
    "monitor",
    "laptop",
    "printer",
    "gift card",
];
const ZH_CITIES: &[&str] = &[
    "北京",
    "上海",
    "广州",
    "深圳",
    "杭州",
    "成都",
    "武汉",
    "南京",
    "西安",
    "重庆",
    "天津",
    "苏州",
    "长沙",
    "郑州",
    "青岛",
    "沈阳",
    "宁波",
    "昆明",
    "大连",
    "厦门",
    "合肥",
    "福州",
    "济南",
    "哈尔滨",
    "石家庄",
    "南宁",
    "贵阳",
    "太原",
    "兰州",
    "乌鲁木齐",
];
const EN_CITIES: &[&str] = &[
    "Beijing",
    "Shanghai",
    "Guangzhou",
    "Shenzhen",
    "Hangzhou",
    "Chengdu",
    "Wuhan",
    "Nanjing",
    "Xi'an",
    "Chongqing",
    "Tianjin",
    "Suzhou",
    "Changsha",
    "Qingdao",
    "Xiamen",
    "Hong Kong",
    "Singapore",
    "Kunming",
    "Dalian",
    "Ningbo",
];
const ZH_SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗",
];
const ZH_GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "霞", "平",
    "刚", "桂英", "建华", "文", "华", "红", "玉兰", "志强", "晓东", "海燕", "雪",
];
const EN_FIRST: &[&str] = &[
    "James", "Mary", "John", "Linda", "David", "Susan", "Michael", "Karen", "Chris", "Emma", "Daniel", "Olivia",
    "Kevin", "Grace", "Ryan", "Sophie",
];
const EN_LAST: &[&str] = &[
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Lee", "Walker", "Hall", "Young", "King", "Wright", "Green",
];

/// The five categories of `config/policy/classification.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Inquiry,
    Fault,
    Complaint,
    Suggestion,
    Other,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Inquiry => "inquiry",
            Category::Fault => "fault",
            Category::Complaint => "complaint",
            Category::Suggestion => "suggestion",
            Category::Other => "other",
        }
    }
}

/// A ticket's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub subject: Option<String>,
    pub body: String,
    /// The order number in it, if the template has one (a rare search term).
    pub order: Option<String>,
}

/// The order number a ticket quotes: `SO` and ten digits, unique in practice.
fn order_number(rng: &mut Rng) -> String {
    format!("SO{:010}", rng.below(10_000_000_000))
}

fn fill(template: &str, rng: &mut Rng, zh: bool, order: &str, date: &str, amount: u64) -> String {
    if !template.contains('{') {
        return template.to_owned();
    }
    let (products, cities) = if zh {
        (ZH_PRODUCTS, ZH_CITIES)
    } else {
        (EN_PRODUCTS, EN_CITIES)
    };
    // One product and one city per ticket, so subject and body agree.
    let product = *rng.pick(products);
    let city = *rng.pick(cities);
    template
        .replace("{order}", order)
        .replace("{product}", product)
        .replace("{city}", city)
        .replace("{date}", date)
        .replace("{amount}", &amount.to_string())
}

/// Subject and body of a ticket in `category`, Chinese or English.
pub fn text(rng: &mut Rng, category: Category, zh: bool) -> Text {
    let templates = match (zh, category) {
        (true, Category::Inquiry) => ZH_INQUIRY,
        (true, Category::Fault) => ZH_FAULT,
        (true, Category::Complaint) => ZH_COMPLAINT,
        (true, Category::Suggestion) => ZH_SUGGESTION,
        (true, Category::Other) => ZH_OTHER,
        (false, Category::Inquiry) => EN_INQUIRY,
        (false, Category::Fault) => EN_FAULT,
        (false, Category::Complaint) => EN_COMPLAINT,
        (false, Category::Suggestion) => EN_SUGGESTION,
        (false, Category::Other) => EN_OTHER,
    };
    let (subject, body) = *rng.pick(templates);
    let order = order_number(rng);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let date = if zh {
        format!("{month}月{day}日")
    } else {
        format!("{day}/{month}")
    };
    let amount = *rng.pick(&[9u64, 19, 29, 39, 59, 99, 128, 199, 299, 399, 599, 1299, 2999]);
    // Pick the product and city once: fill both templates from a copy of the same state.
    let mut same = rng.clone();
    let subject_text = fill(subject, &mut same, zh, &order, &date, amount);
    let body_text = fill(body, rng, zh, &order, &date, amount);
    let (openings, closings) = if zh {
        (ZH_OPENINGS, ZH_CLOSINGS)
    } else {
        (EN_OPENINGS, EN_CLOSINGS)
    };
    let opening = *rng.pick(openings);
    let closing = *rng.pick(closings);
    let sep = if zh || closing.is_empty() { "" } else { " " };
    let quotes_order = subject.contains("{order}") || body.contains("{order}");
    Text {
        subject: (!subject_text.is_empty()).then_some(subject_text),
        body: format!("{opening}{body_text}{sep}{closing}"),
        order: quotes_order.then_some(order),
    }
}

/// A customer's display name, Chinese or English, from the customer's number.
pub fn customer_name(k: u64, zh: bool) -> String {
    let mut rng = Rng::for_item(0xC057, k);
    if zh {
        format!("{}{}", rng.pick(ZH_SURNAMES), rng.pick(ZH_GIVEN))
    } else {
        format!("{} {}", rng.pick(EN_FIRST), rng.pick(EN_LAST))
    }
}

/// A customer's mobile number (11 digits, starting 13–18), unique per customer number.
pub fn customer_phone(k: u64) -> String {
    format!("1{}{:09}", 3 + k % 6, k / 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_and_roughly_uniform() {
        let a: Vec<u64> = (0..5).map(|i| Rng::for_item(7, i).below(100)).collect();
        let b: Vec<u64> = (0..5).map(|i| Rng::for_item(7, i).below(100)).collect();
        assert_eq!(a, b);
        let mut r = Rng::new(1);
        let hits = (0..100_000).filter(|_| r.chance(0.1)).count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
        let w = (0..10_000).filter(|_| r.weighted(&[(true, 1), (false, 3)])).count();
        assert!((2_200..2_800).contains(&w), "{w}");
    }

    #[test]
    fn texts_fill_every_placeholder_and_quote_their_order_number() {
        let mut r = Rng::new(3);
        for i in 0..2_000 {
            let cat = [
                Category::Inquiry,
                Category::Fault,
                Category::Complaint,
                Category::Suggestion,
                Category::Other,
            ][i % 5];
            let t = text(&mut r, cat, i % 3 != 0);
            assert!(!t.body.contains('{'), "{t:?}");
            assert!(!t.subject.as_deref().unwrap_or_default().contains('{'), "{t:?}");
            if let Some(o) = &t.order {
                assert!(
                    t.body.contains(o.as_str()) || t.subject.as_deref().unwrap_or_default().contains(o.as_str()),
                    "{t:?}"
                );
            }
        }
    }

    #[test]
    fn phones_are_distinct_mobile_numbers() {
        let phones: std::collections::HashSet<String> = (0..10_000).map(customer_phone).collect();
        assert_eq!(phones.len(), 10_000);
        assert!(phones.iter().all(|p| p.len() == 11 && p.starts_with('1')));
    }
}
